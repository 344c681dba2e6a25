// What every standalone service command (`linewatch broker`, `rules`, `historian`, `gateway`,
// `simulate`, `dashboard`) does around its service: connect to the broker, start, serve /healthz
// and /metrics (lib/service-http.ts) on the module's port, and stop in order on SIGINT/SIGTERM.
import type { Command } from 'commander';
import { MqttBus, type MqttBusOptions } from '../bus/index.js';
import { clientIdFor } from '../contracts/client-id.js';
import type { Service } from '../lib/service.js';
import { ServiceEndpoints } from '../lib/service-http.js';
import type { ServiceModule } from '../lib/service-module.js';
import { UserError } from './errors.js';
import { brokerList, port } from './flags.js';
import { onShutdown } from './shutdown.js';

/**
 * The service's connection to the broker in /healthz and /metrics (as `mqtt`): which broker of
 * the list it is on (`details.broker`), degraded while it is connected to none, and how often it
 * moved to another one (`broker_failovers`).
 */
function brokerConnection(bus: MqttBus): Service {
  return {
    name: 'mqtt',
    gauges: new Set(['connected']),
    start: async () => undefined,
    stop: async () => undefined,
    health: () => {
      const details = { broker: bus.broker(), brokers: bus.brokers };
      return bus.connected() ? { status: 'ok', reasons: [], details } : { status: 'degraded', reasons: [`not connected to a broker; reconnecting (${bus.brokers.join(', ')})`], details };
    },
    counters: () => ({ connected: bus.connected() ? 1 : 0, broker_failovers: bus.failovers }),
  };
}

/** The flags withHealthOptions adds. */
export interface HealthFlags {
  /** false: --no-health. */
  health?: boolean;
  healthPort?: number;
  healthHost?: string;
}

/** --health-port/--health-host/--no-health, with the module's port as the default. */
export function withHealthOptions(command: Command, module: Pick<ServiceModule, 'name' | 'healthPort'>): Command {
  if (module.healthPort === 'own-server') return command;
  return command
    .option('--health-port <port>', `where /healthz and /metrics answer (default ${module.healthPort}; 0 picks a free port)`, port)
    .option('--health-host <address>', 'address of /healthz and /metrics (default 127.0.0.1; 0.0.0.0 exposes them on every interface)')
    .option('--no-health', 'serve no /healthz and /metrics');
}

/**
 * Serves /healthz and /metrics for `services` unless --no-health; undefined for a module that
 * serves them itself (the dashboard). A taken port is the user's to fix, said so.
 */
export async function startHealthEndpoints(module: Pick<ServiceModule, 'name' | 'healthPort'>, flags: HealthFlags, services: () => readonly Service[]): Promise<ServiceEndpoints | undefined> {
  if (module.healthPort === 'own-server' || flags.health === false) return undefined;
  const host = flags.healthHost ?? '127.0.0.1';
  const healthPort = flags.healthPort ?? module.healthPort;
  const endpoints = new ServiceEndpoints({ host, port: healthPort, sources: services });
  try {
    await endpoints.start();
  } catch (err) {
    const taken = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
    throw new UserError(`${module.name}: cannot serve /healthz and /metrics on ${host}:${healthPort}: ${taken ? 'the port is in use' : (err as Error).message}; pass --health-port PORT (0 picks a free one) or --no-health`);
  }
  console.log(`health: /healthz and /metrics at ${endpoints.url} (linewatch ${module.name}, serving them before it starts)`);
  return endpoints;
}

/** The MQTT password from --password, else $LINEWATCH_MQTT_PASSWORD (kept out of `ps`). */
export function mqttPassword(flag: string | undefined): string | undefined {
  return flag ?? process.env.LINEWATCH_MQTT_PASSWORD;
}

/**
 * The MQTT client id of a service: derived from its account, since the broker lets an account
 * use only its username or USERNAME:SUFFIX (docs/broker.md#client-ids); `anonymous` without an
 * account (a broker in open mode).
 */
export function serviceClientId(username: string | undefined, anonymous: string, suffix?: string): string {
  return username ? clientIdFor(username, suffix) : anonymous;
}

/**
 * Connects to the first broker of `urls` (--broker URL[,URL…]) that answers, failing over to the
 * next when it goes away (MqttBus.connect); a bad URL, or a broker that does not answer (or
 * refuses us), is the user's to fix.
 */
export async function connectBus(urls: string, options: MqttBusOptions, hint?: string): Promise<MqttBus> {
  try {
    return await MqttBus.connect(brokerList(urls), options);
  } catch (err) {
    throw new UserError(hint ? `${(err as Error).message}; ${hint}` : (err as Error).message);
  }
}

export interface StandaloneRun {
  module: Pick<ServiceModule, 'name' | 'healthPort'>;
  service: Service;
  /** The service's connection to the broker, closed after it stops (absent for the broker itself). */
  bus?: MqttBus;
  flags: HealthFlags;
  /** Added to a start failure's message: what to check. */
  startHint?: string;
  beforeStop?: () => void;
}

/**
 * Serves /healthz and /metrics, then starts the service (closing the bus if either fails), and
 * stops them all on a signal: endpoints, service, bus.
 */
export async function runUntilSignal(run: StandaloneRun): Promise<void> {
  const { service, bus } = run;
  // /healthz first: a taken port stops the start before the service connects devices, publishes
  // retained states or sends a command (health() says down until it has started).
  let endpoints: ServiceEndpoints | undefined;
  const connection = bus ? [brokerConnection(bus)] : [];
  try {
    endpoints = await startHealthEndpoints(run.module, run.flags, () => [service, ...connection]);
  } catch (err) {
    await bus?.close();
    throw err;
  }
  try {
    await service.start();
  } catch (err) {
    await service.stop().catch(() => undefined);
    await endpoints?.stop();
    await bus?.close();
    throw new UserError(`${(err as Error).message}${run.startHint ? `. ${run.startHint}` : ''}`);
  }
  onShutdown(async () => {
    run.beforeStop?.();
    await endpoints?.stop();
    await service.stop();
    await bus?.close();
  });
}
