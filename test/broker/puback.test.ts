// A QoS 1 publisher gets its PUBACK only after every in-process subscriber has handled the
// message (scripts/patch-aedes.js): what lets the in-process historian's spool append be the
// moment a device's event counts as accepted.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker({ open: true, wsPort: null });
});
afterAll(async () => {
  await tb?.stop();
});

describe('PUBACK after publish', () => {
  it('acknowledges a QoS 1 publish only once the in-process handler has resolved', async () => {
    const events: string[] = [];
    let openGate: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (openGate = resolve));
    const unsubscribe = await tb.broker.bus.subscribe('lw/A/conv-1/telemetry', async () => {
      events.push('handler called');
      await gate;
    });
    const client = await mqtt.connectAsync(tb.url, { clientId: 'puback-test' });
    try {
      const payload = JSON.stringify({ ts: Date.now(), seq: 1, values: { speed: 1 } });
      const acked = client.publishAsync('lw/A/conv-1/telemetry', payload, { qos: 1 }).then(() => events.push('acked'));
      await waitFor(() => events.includes('handler called'), 5000, 'the in-process handler');
      // Unpatched Aedes has sent the PUBACK long before this; give it the chance to show.
      await sleep(200);
      events.push('gate opened');
      openGate();
      await withTimeout(acked, 5000, 'the PUBACK');
      expect(events).toEqual(['handler called', 'gate opened', 'acked']);
    } finally {
      openGate();
      await unsubscribe();
      await client.endAsync();
    }
  });
});
