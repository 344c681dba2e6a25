// What a service folder declares about itself, in one exported module (e.g. historian/module.ts):
// its name (also its config section and its `linewatch <name>` command), its config schema,
// the broker role its account has and the topics it publishes and subscribes (with QoS and
// retain), and how to build it. config/services.ts lists the modules in start order; that one
// list gives config/schema.ts its sections, `linewatch up` its start and stop order, the broker
// its role table (a grant exists only because a module declares it) and the standalone runner
// (cli/standalone.ts) its /metrics and /healthz port.
import type { ZodType } from 'zod';
import type { Service } from './service.js';

/** One topic filter a service publishes to or subscribes to. */
export interface TopicUse {
  /**
   * An MQTT topic filter. `{account}` stands for the account's own username, for roles whose
   * grants are per account (a device LINE/DEVICE publishes only under lw/LINE/DEVICE/).
   */
  readonly filter: string;
  /** The QoS it publishes at, or subscribes with. */
  readonly qos: 0 | 1 | 2;
  /** Publishes only: whether the broker keeps the last message. */
  readonly retain?: boolean;
  /** Why the service uses it: the code that publishes or handles it (docs and the role table test). */
  readonly why: string;
}

export interface TopicDeclaration {
  readonly publishes: readonly TopicUse[];
  readonly subscribes: readonly TopicUse[];
}

export interface ServiceModule<Section = unknown, Context = never> {
  /** The service's name: its config section key, its `linewatch <name>` command, its `service` label in /metrics. */
  readonly name: string;
  /** The schema of its config section (defaults stated there, once). */
  readonly configSchema: ZodType<Section>;
  /**
   * The broker role of its account (broker/accounts.ts); the role's grants are exactly `topics`.
   * null for the broker itself, which has no account.
   */
  readonly role: string | null;
  readonly topics: TopicDeclaration;
  /**
   * Where a standalone `linewatch <name>` serves /metrics and /healthz unless told otherwise
   * (loopback); 'own-server' for a service that serves them on its own HTTP port (the dashboard).
   */
  readonly healthPort: number | 'own-server';
  /** Builds the service (not started). */
  create(context: Context): Service;
}
