// The composition root of `linewatch up`: builds every service from one validated config and
// starts them in order — managed influxd, broker, historian, rules, dashboard, serial gateway,
// simulated line — all in-process services on the broker's InProcessBus. stop() undoes it in
// reverse order and leaves no child process behind (influxd, socat).
import { existsSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBroker, type LinewatchBroker } from '../../broker/index.js';
import type { LinewatchConfig } from '../../config/schema.js';
import { DashboardServer, type InfluxTarget, type MetricSource } from '../../dashboard/server/index.js';
import { Historian } from '../../historian/index.js';
import { INFLUXD_INSTALL_HINT, findInfluxd, startManagedInfluxd, type ManagedInfluxd } from '../../historian/influxd.js';
import { RulesEngine, formatLoadError } from '../../rules/index.js';
import { logger } from '../../lib/log.js';
import type { Service } from '../../lib/service.js';
import type { StatusFigures } from './status.js';

const log = logger('up');

export interface UpOptions {
  /** A message for the person at the terminal (what runs, what is missing and how to get it). */
  say(message: string): void;
  /** Attach one simulated device through the serial gateway over a socat PTY pair (default true). */
  serial?: boolean;
}

/** What `linewatch up` is running; `stop()` ends it all in reverse start order. */
export interface RunningLine {
  broker: LinewatchBroker;
  dashboard: DashboardServer | undefined;
  influx: InfluxTarget | undefined;
  /** PIDs of the child processes we started (influxd, socat), for the curious and for tests. */
  childPids: number[];
  services: Service[];
  status(): StatusFigures;
  stop(): Promise<void>;
}

/** A step that was started and how to undo it. */
interface Started {
  name: string;
  stop(): Promise<void>;
}

/**
 * Paths under the default `.linewatch/` follow `dataDir` when it is set elsewhere, so one flag
 * (`--data-dir`) moves every file `up` writes.
 */
export function underDataDir(path: string, dataDir: string): string {
  if (dataDir === '.linewatch' || isAbsolute(path)) return path;
  const rel = relative('.linewatch', path);
  if (rel.startsWith('..')) return path;
  return join(dataDir, rel);
}

/** The rules folder: as configured, or — for the default — the examples shipped with linewatch. */
export function rulesDir(dir: string): string {
  if (existsSync(dir) || dir !== 'rules/examples') return dir;
  return fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../rules/examples' : '../../rules/examples', import.meta.url));
}

export async function startLine(config: LinewatchConfig, hooks: UpOptions): Promise<RunningLine> {
  const dataDir = config.dataDir;
  mkdirSync(dataDir, { recursive: true });
  const started: Started[] = [];
  const services: Service[] = [];
  const childPids: number[] = [];
  let broker: LinewatchBroker | undefined;
  let dashboard: DashboardServer | undefined;
  let influx: InfluxTarget | undefined;
  let historianRef: Historian | undefined;

  const stopAll = async (): Promise<void> => {
    for (const step of started.reverse()) {
      try {
        await step.stop();
      } catch (err) {
        // Keep stopping the rest: one service failing to stop must not leave children behind.
        log.error({ err, service: step.name }, 'failed to stop cleanly');
      }
    }
    started.length = 0;
  };
  const startService = async (service: Service): Promise<void> => {
    await service.start();
    services.push(service);
    started.push({ name: service.name, stop: () => service.stop() });
  };

  try {
    // 1. InfluxDB: the configured one, or a managed influxd in the data dir, or none (said clearly).
    if (config.historian.enabled) {
      if (config.historian.influxUrl) {
        influx = { url: config.historian.influxUrl, database: config.historian.database, username: config.historian.username, password: config.historian.password };
      } else if (!findInfluxd()) {
        hooks.say(`history off: influxd was not found; ${INFLUXD_INSTALL_HINT}. Running without history.`);
      } else {
        const managed: ManagedInfluxd = await startManagedInfluxd({ dataDir: join(dataDir, 'influxd') });
        started.push({ name: 'influxd', stop: () => managed.stop() });
        childPids.push(managed.pid);
        influx = { url: managed.url, database: config.historian.database };
        hooks.say(`InfluxDB: managed influxd at ${managed.url} (pid ${managed.pid}, data in ${join(dataDir, 'influxd')})`);
      }
    }

    // 2. The broker, authentication on.
    const brokerConfig = { ...config.broker, devicesFile: underDataDir(config.broker.devicesFile, dataDir) };
    broker = await startBroker(brokerConfig);
    const b = broker;
    started.push({ name: 'broker', stop: () => b.stop() });
    const { mqtt, ws } = broker.ports;
    hooks.say(`broker: mqtt://${brokerConfig.host}:${mqtt}${ws !== null ? `  ws://${brokerConfig.host}:${ws}/mqtt` : ''}${brokerConfig.open ? '  (OPEN MODE: no authentication)' : ''}`);

    // 3. The historian, on the broker's in-process bus.
    let historian: Historian | undefined;
    if (influx) {
      historian = new Historian({ bus: broker.bus, config: config.historian, dataDir, influxUrl: influx.url });
      await startService(historian);
    }
    historianRef = historian;

    // 4. The rules engine.
    if (config.rules.enabled) {
      const dir = rulesDir(config.rules.dir);
      if (!existsSync(dir)) hooks.say(`rules: the folder ${dir} does not exist; the engine runs with no rules until it does (set rules.dir)`);
      const { enabled: _enabled, dir: _dir, stateFile, ...settings } = config.rules;
      const rules = new RulesEngine({ bus: broker.bus, dir, stateFile: underDataDir(stateFile, dataDir), settings });
      await startService(rules);
      const set = rules.rules();
      hooks.say(`rules: ${set.rules.length} rules from ${dir}`);
      for (const e of set.errors) hooks.say(`rules: ${formatLoadError(e)}`);
    }

    // 5. The dashboard (before the devices, so it sees their first retained messages live).
    if (config.dashboard.enabled) {
      const sources = (): MetricSource[] => [{ name: 'broker', counters: () => b.counters() }, ...services.filter((s) => s !== dashboard)];
      dashboard = new DashboardServer({ bus: broker.bus, config: config.dashboard, influx: influx ?? null, metricSources: sources });
      await startService(dashboard);
      const tokenQuery = dashboard.token ? `/?token=${dashboard.token}` : '/';
      hooks.say(`dashboard: ${dashboard.url}${dashboard.tokenGenerated ? tokenQuery : '/'}${dashboard.tokenGenerated ? '  (token generated for this run; set dashboard.token to keep one)' : ''}`);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  const figures = (): StatusFigures => {
    const stats = b2().stats();
    const view = dashboard?.view;
    const commands = view?.recentCommands() ?? [];
    return {
      devicesOnline: view?.onlineDevices() ?? stats.clients,
      devicesKnown: view?.snapshot().devices.length ?? stats.clients,
      eventsPerSecond: stats.messagesInPerSecond,
      commands: commands.length,
      commandsAcked: commands.filter((c) => c.ack === 'done' || c.ack === 'accepted').length,
      activeAlerts: view?.activeAlerts().length ?? 0,
      influxBacklog: historianRef ? (historianRef.counters().queue_depth ?? 0) : null,
    };
  };
  const b2 = (): LinewatchBroker => broker!;

  return {
    broker: broker!,
    dashboard,
    influx,
    childPids,
    services,
    status: figures,
    stop: stopAll,
  };
}
