// The one list of service modules (config/services.ts) against the services themselves: the rules
// engine, the OEE service and the dashboard, started for real on a real broker's in-process bus,
// subscribe to exactly the filters their modules declare (and so their roles are granted exactly
// those); every role an account can have is some module's (or admin). The historian subscribes
// to lw/# (historian/index.ts, its module says so); the gateway's and simulator's per-device
// subscriptions are not checked here (their grants come from contracts/device-topics.ts; the device
// role's confinement is in test/broker/units.unit.test.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROLES } from '../../broker/accounts.js';
import type { Bus, MessageHandler, SubscribeOptions } from '../../bus/bus.js';
import { roleGrants, SERVICE_MODULES } from '../../config/services.js';
import { dashboardModule } from '../../dashboard/module.js';
import { oeeModule } from '../../oee/module.js';
import { oeeConfigSchema } from '../../oee/config.js';
import { rulesModule } from '../../rules/module.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

/** The real in-process bus, with every subscribe call's filters noted on the way through. */
function recording(bus: Bus): { bus: Bus; filters: string[] } {
  const filters: string[] = [];
  const wrapped: Bus = {
    publish: (topic, payload, options) => bus.publish(topic, payload, options),
    subscribe: (filter: string | string[], handler: MessageHandler, options?: SubscribeOptions) => {
      filters.push(...(Array.isArray(filter) ? filter : [filter]));
      return bus.subscribe(filter, handler, options);
    },
    close: () => bus.close(),
    connected: () => bus.connected(),
    onConnectionChange: (listener) => bus.onConnectionChange(listener),
  };
  return { bus: wrapped, filters };
}

let tb: TestBroker;
let dir: string;
beforeAll(async () => {
  tb = await startTestBroker({ wsPort: null });
  dir = mkdtempSync(join(tmpdir(), 'linewatch-services-'));
});
afterAll(async () => {
  await tb?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the service modules', () => {
  it('give every role an account may have its grants (admin is the broker’s own)', () => {
    const table = roleGrants();
    expect(ROLES.filter((role) => role !== 'admin' && !table[role])).toEqual([]);
    expect(SERVICE_MODULES.map((module) => module.role).filter((role) => role !== null && !(ROLES as readonly string[]).includes(role))).toEqual([]);
  });

  it.each([
    // With a shadow set, which reads the same device events and its own topics under lw/_shadow/ (rules/shadow-bus.ts).
    ['rules', () => rulesModule, (bus: Bus) => rulesModule.create({ bus, dir: join(dir, 'no-rules'), shadowDir: join(dir, 'no-shadow-rules'), watch: false })],
    ['oee', () => oeeModule, (bus: Bus) => oeeModule.create({ bus, config: oeeConfigSchema.parse({}) })],
    ['dashboard', () => dashboardModule, (bus: Bus) => dashboardModule.create({ bus, config: { host: '127.0.0.1', port: 0, token: null } })],
  ] as const)('%s subscribes to exactly what its module declares', async (_name, module, create) => {
    const { bus, filters } = recording(tb.broker.bus);
    const service = create(bus);
    await service.start();
    try {
      expect([...new Set(filters)].sort()).toEqual(module().topics.subscribes.map((use) => use.filter).sort());
    } finally {
      await service.stop();
    }
  });
});
