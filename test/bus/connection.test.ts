// Bus.connected() and onConnectionChange: what a publisher with its own store (the gateway's
// outbox) reads to know whether a publish would go out now, on both buses, against a real broker
// that goes away and comes back on the same port.
import { afterEach, describe, expect, it } from 'vitest';
import { brokerConfigSchema, startBroker, type LinewatchBroker } from '../../broker/index.js';
import { InProcessBus } from '../../broker/in-process-bus.js';
import { MqttBus } from '../../bus/index.js';
import { waitFor } from '../../lib/wait.js';
import { roleGrants } from '../../config/services.js';

const openBroker = (port = 0): Promise<LinewatchBroker> => startBroker(brokerConfigSchema.parse({ host: '127.0.0.1', persistence: 'memory', port, wsPort: null, open: true }), { roles: roleGrants() });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('Bus connection state', () => {
  it('MqttBus: false while the broker is away, true again after it reconnected, each change told once', async () => {
    let broker = await openBroker();
    cleanups.push(() => broker.stop());
    const port = broker.ports.mqtt;
    const bus = await MqttBus.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 100 });
    cleanups.push(() => bus.close());
    const told: boolean[] = [];
    bus.onConnectionChange((connected) => told.push(connected));
    let closes = 0;
    bus.client.on('close', () => closes++);
    expect(bus.connected()).toBe(true);

    await broker.stop();
    await waitFor(() => !bus.connected(), 10_000, 'the bus to notice the broker is gone');
    // MQTT.js emits 'close' again for every failed reconnect: still one change told.
    await waitFor(() => closes >= 3, 10_000, 'two failed reconnects');
    expect(told).toEqual([false]);

    broker = await openBroker(port);
    await waitFor(() => bus.connected(), 10_000, 'the bus to reconnect');
    await waitFor(() => told.length >= 2, 10_000, 'the reconnection to be told');
    expect(told).toEqual([false, true]);
  });

  it('a listener stops hearing changes once removed', async () => {
    const broker = await openBroker();
    cleanups.push(() => broker.stop());
    const bus = await MqttBus.connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { reconnectPeriod: 0 });
    const told: boolean[] = [];
    const stop = bus.onConnectionChange((connected) => told.push(connected));
    const kept: boolean[] = [];
    bus.onConnectionChange((connected) => kept.push(connected));
    stop();
    await bus.close();
    await waitFor(() => kept.length > 0, 10_000, 'the close to be told');
    expect(kept).toEqual([false]);
    expect(told).toEqual([]);
  });

  it('InProcessBus: connected until closed, and the close is told', async () => {
    const broker = await openBroker();
    cleanups.push(() => broker.stop());
    const bus = new InProcessBus(broker.aedes);
    const told: boolean[] = [];
    bus.onConnectionChange((connected) => told.push(connected));
    expect(bus.connected()).toBe(true);
    await bus.close();
    expect(bus.connected()).toBe(false);
    expect(told).toEqual([false]);
  });
});
