// The composition root of `linewatch up`: builds every service from one validated config and
// starts them in order — managed influxd, broker, historian, OEE, rules, dashboard, serial gateway,
// simulated line — all in-process services on the broker's InProcessBus. stop() undoes it in
// reverse order and leaves no child process behind (influxd, socat).
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBroker, type LinewatchBroker } from '../../broker/index.js';
import { InProcessBus, NO_REDELIVERY } from '../../broker/in-process-bus.js';
import type { LinewatchConfig } from '../../config/schema.js';
import { DashboardServer, type InfluxTarget, type MetricSource } from '../../dashboard/server/index.js';
import { SerialGateway, type GatewayPortConfig } from '../../gateway/index.js';
import { Historian } from '../../historian/index.js';
import { INFLUXD_INSTALL_HINT, findInfluxd, influxToUse, managedInfluxdDir } from '../../historian/influxd.js';
import { OeeService } from '../../oee/index.js';
import { RulesEngine, formatLoadError } from '../../rules/index.js';
import { LineSimulator, loadDemoScenario, loadScenarioFile } from '../../simulators/index.js';
import { ChildRegistry, reapLeftovers } from './children.js';
import { provisionDeviceAccounts } from './credentials.js';
import { logger } from '../../lib/log.js';
import { withTimeout } from '../../lib/wait.js';
import type { Service } from '../../lib/service.js';
import { SOCAT_INSTALL_HINT, findSocat, openPtyPair, type PtyPair } from './pty-pair.js';
import type { StatusFigures } from './status.js';
import { roleGrants } from '../../config/services.js';

/** The simulated station that talks through the serial gateway, like a legacy device. */
export const SERIAL_STATION = 'st-5';

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
  // Absolute, so child command lines name it (see children.ts) whatever the working directory.
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const leftovers = await reapLeftovers(dataDir);
  if (leftovers.length > 0) hooks.say(`ended what a previous run in ${dataDir} left running: ${leftovers.join(', ')}`);
  const children = new ChildRegistry(dataDir);
  const started: Started[] = [];
  const services: Service[] = [];
  let broker: LinewatchBroker | undefined;
  let dashboard: DashboardServer | undefined;
  let influx: InfluxTarget | undefined;
  let historianRef: Historian | undefined;

  // Should linewatch exit before stopping them (a shutdown that ran out of time, a crash), its
  // children go with it. process.kill is synchronous, so this works in an 'exit' handler.
  const killChildrenOnExit = (): void => {
    for (const pid of children.pids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.once('exit', killChildrenOnExit);

  const stopAll = async (): Promise<void> => {
    for (const step of started.reverse()) {
      try {
        // Bounded per step, so a stuck service cannot keep the children after it from stopping.
        await withTimeout(step.stop(), step.name === 'historian' || step.name === 'influxd' ? 12_000 : 5000, `${step.name} to stop`);
      } catch (err) {
        // Keep stopping the rest: one service failing to stop must not leave children behind.
        log.error({ err, service: step.name }, 'failed to stop cleanly');
      }
    }
    started.length = 0;
    process.removeListener('exit', killChildrenOnExit);
  };
  const startService = async (service: Service): Promise<void> => {
    await service.start();
    services.push(service);
    started.push({ name: service.name, stop: () => service.stop() });
  };

  try {
    // 1. InfluxDB: the configured one, or a managed influxd in the data dir, or none (said clearly).
    if (config.historian.enabled) {
      if (!config.historian.influxUrl && !findInfluxd()) {
        hooks.say(`history off: influxd was not found; ${INFLUXD_INSTALL_HINT}. Running without history.`);
      } else {
        const { url, managed } = await influxToUse(config.historian.influxUrl, dataDir);
        if (managed) {
          children.add('influxd', managed.pid);
          started.push({ name: 'influxd', stop: () => managed.stop().then(() => children.remove(managed.pid)) });
          influx = { url, database: config.historian.database };
          hooks.say(`InfluxDB: managed influxd at ${url} (pid ${managed.pid}, data in ${managedInfluxdDir(dataDir)})`);
        } else {
          influx = { url, database: config.historian.database, username: config.historian.username, password: config.historian.password };
        }
      }
    }

    // 2. The broker, authentication on.
    const brokerConfig = { ...config.broker, devicesFile: underDataDir(config.broker.devicesFile, dataDir) };
    broker = await startBroker(brokerConfig, { roles: roleGrants() });
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

    // 3b. OEE per line on lw/{line}/summary, from the device events (with or without a historian).
    if (config.oee.enabled) await startService(new OeeService({ bus: broker.bus, config: config.oee }));

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

    // 6. A socat PTY pair for the serial station, and the serial gateway on its far end
    //    (plus any ports from gateway.ports).
    let pair: PtyPair | undefined;
    const line = config.simulate.line;
    if (config.simulate.enabled && hooks.serial !== false) {
      if (!findSocat()) {
        hooks.say(`serial: socat was not found, so every simulated device speaks MQTT; ${SOCAT_INSTALL_HINT}`);
      } else {
        const deviceEnd = join(dataDir, `pty-${line}-${SERIAL_STATION}-device`);
        const gatewayEnd = join(dataDir, `pty-${line}-${SERIAL_STATION}-gateway`);
        // Links left by a run that was killed would make socat fail.
        for (const link of [deviceEnd, gatewayEnd]) rmSync(link, { force: true });
        const opened = await openPtyPair(deviceEnd, gatewayEnd);
        pair = opened;
        children.add('socat', opened.pid);
        started.push({ name: 'socat', stop: () => opened.stop().then(() => children.remove(opened.pid)) });
        hooks.say(`serial: ${line}/${SERIAL_STATION} talks through the serial gateway on ${opened.a} ⇄ ${opened.b} (socat pid ${opened.pid})`);
      }
    }
    const ports: GatewayPortConfig[] = [...config.gateway.ports];
    if (pair) ports.push({ path: pair.b, device: `${line}/${SERIAL_STATION}`, codec: 'ndjson' });
    if (ports.length > 0) {
      // Its own bus without in-process redelivery: a publish the historian refuses fails at once
      // and the gateway's outbox spools it to disk, as a device keeps and resends it.
      const gatewayBus = new InProcessBus(broker.aedes, { redelivery: NO_REDELIVERY });
      const gateway = new SerialGateway({ bus: gatewayBus, ports, spoolDir: underDataDir(config.gateway.spoolDir, dataDir) });
      await startService(gateway);
      hooks.say(`gateway: ${ports.length} serial port(s): ${ports.map((p) => `${p.path} → ${p.device}`).join(', ')}`);
    }

    // 7. The simulated line: every device over MQTT with its own account and will, except the
    //    serial station, which writes frames into its end of the PTY pair.
    if (config.simulate.enabled) {
      const sim = config.simulate;
      const scenario = sim.scenario ? loadScenarioFile(sim.scenario) : loadDemoScenario();
      const host = brokerConfig.host === '0.0.0.0' || brokerConfig.host === '::' ? '127.0.0.1' : brokerConfig.host;
      const serialDevices = pair ? [{ device: SERIAL_STATION, path: pair.a, codec: 'ndjson' as const }] : [];
      let credentials: ((line: string, device: string) => { username: string; password: string } | undefined) | undefined;
      const simulator = new LineSimulator({
        line,
        seed: sim.seed,
        scenario,
        rateHz: sim.rateHz,
        speedup: sim.speedup,
        mqtt: { url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${broker.ports.mqtt}`, mode: 'per-device', credentials: (l, d) => credentials?.(l, d) },
        serialDevices,
      });
      if (!brokerConfig.open) {
        const networked = simulator.model.deviceIds().filter((id) => !serialDevices.some((s) => s.device === id));
        const accounts = await provisionDeviceAccounts(dataDir, brokerConfig.devicesFile, networked.map((id) => `${line}/${id}`));
        credentials = accounts.lookup;
        if (accounts.created > 0) hooks.say(`accounts: ${accounts.created} simulated device account(s) added to ${brokerConfig.devicesFile} (passwords in ${join(dataDir, 'sim-credentials.json')}, mode 0600)`);
      }
      await startService(simulator);
      hooks.say(`simulate: line ${line}, ${simulator.model.deviceIds().length} devices (scenario ${scenario.name}, speedup ×${sim.speedup}, seed ${sim.seed})`);
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  const running = broker!;
  const figures = (): StatusFigures => {
    const stats = running.stats();
    const view = dashboard?.view;
    const history = historianRef?.counters();
    return {
      devicesOnline: view?.onlineDevices() ?? stats.clients,
      devicesKnown: view?.snapshot().devices.length ?? stats.clients,
      eventsPerSecond: stats.messagesInPerSecond,
      commands: view?.counters.commands ?? 0,
      commandsAcked: view?.counters.commands_acked ?? 0,
      activeAlerts: view?.activeAlerts().length ?? 0,
      influxBacklog: history ? history.queue_depth : null,
      historianRefusing: history?.disk_full ? 'disk full' : history?.spool_refusing ? 'spool full' : undefined,
    };
  };

  return {
    broker: running,
    dashboard,
    influx,
    childPids: children.pids(),
    services,
    status: figures,
    stop: stopAll,
  };
}
