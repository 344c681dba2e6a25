// The one list of linewatch services, in start order (`linewatch up` stops them in reverse).
// config/schema.ts takes each one's config section from here, `up` its order, the standalone
// runner each one's /healthz port, and the broker its role table: every grant of a role is a
// topic that a module of that role declares (roleGrants below), and nothing else.
import { brokerModule } from '../broker/module.js';
import type { RoleTable } from '../broker/acl.js';
import { dashboardModule } from '../dashboard/module.js';
import { gatewayModule } from '../gateway/module.js';
import { historianModule } from '../historian/module.js';
import { oeeModule } from '../oee/module.js';
import type { ServiceModule, TopicUse } from '../lib/service-module.js';
import { rulesModule } from '../rules/module.js';
import { simulateModule } from '../simulators/module.js';
import { SPARKPLUG_EDGE_ROLE, sparkplugModule } from '../sparkplug/module.js';

/**
 * The broker starts first (before it, only a managed influxd); the historian next, so it hears
 * everything; the OEE service beside it; then the rules engine and the dashboard (before any device, so they hear every
 * first retained message); then what speaks for devices: the serial gateway and the simulated line.
 */
export const SERVICE_MODULES = [brokerModule, historianModule, oeeModule, rulesModule, dashboardModule, sparkplugModule, gatewayModule, simulateModule] as const;

/** Roles of accounts that are not our services (Sparkplug edge nodes), declared like a module's topics. */
export const FOREIGN_ROLES: readonly { role: string; topics: ServiceModule['topics'] }[] = [SPARKPLUG_EDGE_ROLE];

export type ServiceName = (typeof SERVICE_MODULES)[number]['name'];

/** The role table: the union of the topics every module of each role declares (admin is the broker's own: everything). */
export function roleGrants(modules: readonly ServiceModule<unknown, never>[] = SERVICE_MODULES as readonly ServiceModule<unknown, never>[], foreign: typeof FOREIGN_ROLES = FOREIGN_ROLES): RoleTable {
  const table: Record<string, { publish: string[]; subscribe: string[] }> = {};
  const add = (list: string[], uses: readonly TopicUse[]): void => {
    for (const use of uses) if (!list.includes(use.filter)) list.push(use.filter);
  };
  for (const module of [...modules, ...foreign]) {
    if (module.role === null) continue;
    const grants = (table[module.role] ??= { publish: [], subscribe: [] });
    add(grants.publish, module.topics.publishes);
    add(grants.subscribe, module.topics.subscribes);
  }
  return table;
}
