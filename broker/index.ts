// The embedded MQTT broker: Aedes 1.x behind our own listeners, with authentication from the
// devices file, an ACL by role, payload validation on linewatch topics, the socket limits Aedes
// lacks, a fix for aedes#193, backpressure on publishers, and stats. It is a Service
// (BrokerService in service.ts, which assembles the parts of this folder). See docs/broker.md.
import type { BrokerConfig } from './config.js';
import { BrokerService, type BrokerOptions, type LinewatchBroker } from './service.js';

export { addAccount, addAccounts, generatePassword, passwordProblem, removeAccount, listAccounts, ROLES, type Role, type AccountSummary, type NewAccount } from './accounts.js';
export { brokerConfigSchema, type BrokerConfig } from './config.js';
export { REJECT_REASONS, type BrokerStats, type RejectReason } from './stats.js';
export { InProcessBus, NO_REDELIVERY, REDELIVERY, type RedeliveryPolicy } from './in-process-bus.js';
export { BrokerService, CONNECTIONS_NEAR_LIMIT, type BrokerOptions, type BrokerPorts, type LinewatchBroker } from './service.js';
export { rolesWithoutGrants, type RoleGrants, type RoleTable } from './acl.js';

/** Creates a broker and starts it (BrokerService for the service lifecycle). */
export async function startBroker(config: BrokerConfig, options: BrokerOptions): Promise<LinewatchBroker> {
  const broker = new BrokerService(config, options);
  await broker.start();
  return broker;
}
