// The composition root of `linewatch up`: builds every service from one validated config and
// starts a managed influxd, then the services in the order of config/services.ts — broker,
// historian, OEE, rules, dashboard, serial gateway, simulated line — all in-process services on
// the broker's InProcessBus. stop() undoes it in
// reverse order and leaves no child process behind (influxd, socat).
import { existsSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LinewatchBroker } from '../../broker/index.js';
import { InProcessBus, NO_REDELIVERY } from '../../broker/in-process-bus.js';
import { brokerModule } from '../../broker/module.js';
import type { LinewatchConfig } from '../../config/schema.js';
import { roleGrants, SERVICE_MODULES, type ServiceName } from '../../config/services.js';
import { ownershipOf } from '../../contracts/line-workers.js';
import { UserError } from '../errors.js';
import { dashboardModule } from '../../dashboard/module.js';
import type { DashboardServer, InfluxTarget } from '../../dashboard/server/index.js';
import type { GatewayPortConfig } from '../../gateway/index.js';
import { gatewayModule } from '../../gateway/module.js';
import type { HistorianService } from '../../historian/index.js';
import { INFLUXD_INSTALL_HINT, findInfluxd, influxToUse, managedInfluxdDir, type SupervisedInfluxd } from '../../historian/influxd.js';
import { historianModule } from '../../historian/module.js';
import { oeeModule } from '../../oee/module.js';
import { formatLoadError } from '../../rules/index.js';
import { engineSettings } from '../../rules/config.js';
import { rulesModule } from '../../rules/module.js';
import { SIMULATED_EDGE, loadDemoScenario, loadScenarioFile } from '../../simulators/index.js';
import { simulateModule } from '../../simulators/module.js';
import { sparkplugModule } from '../../sparkplug/module.js';
import { ChildRegistry, reapLeftovers } from './children.js';
import { lockDataDir, type DataDirLock } from './data-dir-lock.js';
import { provisionDeviceAccounts } from './credentials.js';
import { logger } from '../../lib/log.js';
import { withTimeout } from '../../lib/wait.js';
import { redactUrl } from '../../lib/influx-url.js';
import type { Service } from '../../lib/service.js';
import { SOCAT_INSTALL_HINT, findSocat, openPtyPair, type PtyPair } from './pty-pair.js';
import type { StatusFigures } from './status.js';

/** The simulated station that talks through the serial gateway, like a legacy device. */
export const SERIAL_STATION = 'st-5';

const log = logger('up');

export interface UpOptions {
  /** A message for the person at the terminal (what runs, what is missing and how to get it). */
  say(message: string): void;
  /** Attach one simulated device through the serial gateway over a socat PTY pair (default true). */
  serial?: boolean;
  /** The data dir's lock, when the caller took it before touching the data dir (cli/commands/up.ts, before its log file); startLine takes it otherwise. Released by stop() or a failed start. */
  dataDirLock?: DataDirLock;
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
  // Before reapLeftovers: a second `up` on this data dir must not end the first one's children.
  const lock = hooks.dataDirLock ?? lockDataDir(dataDir);
  if (lock.dataDir !== dataDir) throw new Error(`startLine was given the lock of ${lock.dataDir} for the data dir ${dataDir}; this is a bug`);
  // Undone last by stopAll() (it runs the steps in reverse).
  const started: Started[] = [{ name: 'data dir lock', stop: async () => lock.release() }];
  let leftovers: string[];
  try {
    leftovers = await reapLeftovers(dataDir);
  } catch (err) {
    lock.release();
    throw err;
  }
  if (leftovers.length > 0) hooks.say(`ended what a previous run in ${dataDir} left running: ${leftovers.join(', ')}`);
  const children = new ChildRegistry(dataDir);
  const services: Service[] = [];
  let broker: LinewatchBroker | undefined;
  let dashboard: DashboardServer | undefined;
  let influx: InfluxTarget | undefined;
  let historianRef: HistorianService | undefined;
  let managedInfluxd: SupervisedInfluxd | undefined;

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
  const running = (): LinewatchBroker => {
    if (!broker) throw new Error('the broker must start before the services that use its bus (config/services.ts order)');
    return broker;
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
        const { url, managed } = await influxToUse(config.historian.influxUrl, dataDir, {
          // A crashed influxd started again (historian/influxd.ts): the registry names the new pid, the historian writes at once.
          onRestart: (pid, previousPid) => {
            children.remove(previousPid);
            children.add('influxd', pid);
            historianRef?.influxBack();
          },
          onGiveUp: (reason) => hooks.say(`InfluxDB: ${reason}`),
        });
        managedInfluxd = managed;
        if (managed) {
          children.add('influxd', managed.pid);
          started.push({ name: 'influxd', stop: () => managed.stop().then(() => children.remove(managed.pid)) });
          influx = { url, database: config.historian.database, periodRetentionPolicy: config.historian.periodRetentionPolicy };
          hooks.say(`InfluxDB: managed influxd at ${url} (pid ${managed.pid}, data in ${managedInfluxdDir(dataDir)})`);
        } else {
          influx = { url, database: config.historian.database, periodRetentionPolicy: config.historian.periodRetentionPolicy, username: config.historian.username, password: config.historian.password };
        }
      }
    }

    // 2. The services, in the order of the one list (config/services.ts); stopAll() undoes it in reverse.
    const brokerConfig = { ...config.broker, devicesFile: underDataDir(config.broker.devicesFile, dataDir) };
    const line = config.simulate.line;
    let pair: PtyPair | undefined;
    // The embedded broker's MQTT listener, as a client on this machine reaches it.
    const embeddedUrl = (): string => {
      const host = brokerConfig.host === '0.0.0.0' || brokerConfig.host === '::' ? '127.0.0.1' : brokerConfig.host;
      return `mqtt://${host.includes(':') ? `[${host}]` : host}:${running().ports.mqtt}`;
    };
    const steps: Record<ServiceName, () => Promise<void>> = {
      // The broker, authentication on, with the role table the modules declare.
      broker: async () => {
        if (brokerConfig.cluster !== null) throw new UserError('broker.cluster: linewatch up runs its services on the broker\'s in-process bus, which a cluster node does not offer (what it delivers crosses Redis); run `linewatch broker --cluster URL` on each node and the services standalone (docs/broker.md#cluster)');
        const created = brokerModule.create({ config: brokerConfig, roles: roleGrants(), dataDir });
        await startService(created);
        broker = created;
        const { mqtt, ws } = created.ports;
        hooks.say(`broker: mqtt://${brokerConfig.host}:${mqtt}${ws !== null ? `  ws://${brokerConfig.host}:${ws}/mqtt` : ''}${brokerConfig.open ? '  (OPEN MODE: no authentication)' : ''}`);
      },
      // The historian, on the broker's in-process bus.
      historian: async () => {
        if (!influx) return;
        // As for the rules below: above speedup 1 every simulated ts is ahead of the real clock by design, so none is counted future_ts.
        const simulatedAhead = config.simulate.enabled && config.simulate.speedup > 1;
        const historianConfig = simulatedAhead ? { ...config.historian, quality: { ...config.historian.quality, futureAheadMs: Number.MAX_SAFE_INTEGER } } : config.historian;
        if (simulatedAhead) hooks.say(`historian: historian.quality.futureAheadMs is not applied at speedup ×${config.simulate.speedup} (the simulated devices' clocks run ahead of the real one)`);
        const historian = historianModule.create({ bus: running().bus, config: historianConfig, dataDir, influxUrl: influx.url });
        await startService(historian);
        historianRef = historian;
      },
      // OEE per line on lw/{line}/summary, from the device events (with or without a historian).
      oee: async () => {
        if (config.oee.enabled) await startService(oeeModule.create({ bus: running().bus, config: config.oee, stateFile: config.oee.stateFile === null ? null : underDataDir(config.oee.stateFile, dataDir) }));
      },
      rules: async () => {
        if (!config.rules.enabled) return;
        const dir = rulesDir(config.rules.dir);
        if (!existsSync(dir)) hooks.say(`rules: the folder ${dir} does not exist; the engine runs with no rules until it does (set rules.dir)`);
        const { stateFile, shadowDir } = config.rules;
        const settings = engineSettings(config.rules);
        if (shadowDir !== null && !existsSync(shadowDir)) throw new Error(`rules.shadowDir: the folder ${shadowDir} does not exist; pass a folder of rule YAML files (or leave rules.shadowDir null)`);
        // Above speedup 1 the simulated devices' clocks run ahead of the engine's (real) one by design;
        // the future-timestamp guard would refuse all they say, so such a run does without it.
        const simulatedAhead = config.simulate.enabled && config.simulate.speedup > 1;
        const rules = rulesModule.create({ bus: running().bus, dir, shadowDir, stateFile: underDataDir(stateFile, dataDir), lines: ownershipOf(config.rules, 'rules'), settings: simulatedAhead ? { ...settings, maxClockSkewMs: Number.MAX_SAFE_INTEGER } : settings });
        if (simulatedAhead) hooks.say(`rules: rules.maxClockSkewMs is not applied at speedup ×${config.simulate.speedup} (the simulated devices' clocks run ahead of the real one)`);
        await startService(rules);
        const set = rules.rules();
        hooks.say(`rules: ${set.rules.length} rules from ${dir}`);
        for (const e of set.errors) hooks.say(`rules: ${formatLoadError(e)}`);
        const shadow = rules.shadowRules();
        if (shadow) hooks.say(`rules: shadow set, ${shadow.rules.length} rules from ${shadowDir} beside them; their commands and alarms go only to lw/_shadow/ (never to a device)`);
      },
      // The dashboard (before the devices, so it sees their first retained messages live); its
      // /metrics and /healthz cover every service of this process.
      dashboard: async () => {
        if (!config.dashboard.enabled) return;
        const server = dashboardModule.create({ bus: running().bus, config: config.dashboard, influx: influx ?? null, metricSources: () => services.filter((service) => service !== server), deviceQuality: (lineId, device) => historianRef?.deviceQuality(lineId, device)?.totals });
        await startService(server);
        dashboard = server;
        const tokenQuery = server.token ? `/?token=${server.token}` : '/';
        hooks.say(`dashboard: ${server.url}${server.tokenGenerated ? tokenQuery : '/'}${server.tokenGenerated ? '  (token generated for this run; set dashboard.token to keep one)' : ''}`);
      },
      // The Sparkplug B primary host (sparkplug.enabled): its Sparkplug side over MQTT (it needs a
      // will), on the embedded broker with an account named hostId unless sparkplug.brokerUrl; its
      // linewatch side on the in-process bus.
      sparkplug: async () => {
        const sp = config.sparkplug;
        if (!sp.enabled) return;
        let account = { ...(sp.username !== null ? { username: sp.username } : {}), ...(sp.password !== null ? { password: sp.password } : {}) };
        if (sp.brokerUrl === null && !brokerConfig.open) {
          const accounts = await provisionDeviceAccounts(dataDir, brokerConfig.devicesFile, [sp.hostId], 'sparkplug');
          account = accounts.account(sp.hostId) ?? account;
        }
        const url = sp.brokerUrl ?? embeddedUrl();
        await startService(sparkplugModule.create({ bus: running().bus, config: sp, mqtt: { url, ...account } }));
        hooks.say(`sparkplug: primary host ${sp.hostId} on ${redactUrl(url)} (STATE on spBv1.0/STATE/${sp.hostId})`);
      },
      // A socat PTY pair for the serial station, and the serial gateway on its far end (plus any
      // ports from gateway.ports).
      gateway: async () => {
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
        if (ports.length === 0) return;
        // Its own bus without in-process redelivery: a publish the historian refuses fails at once
        // and the gateway's outbox spools it to disk, as a device keeps and resends it.
        const gatewayBus = new InProcessBus(running().aedes, { redelivery: NO_REDELIVERY });
        const gateway = gatewayModule.create({ bus: gatewayBus, ports, spoolDir: underDataDir(config.gateway.spoolDir, dataDir) });
        await startService(gateway);
        hooks.say(`gateway: ${ports.length} port(s): ${gateway.describePorts().join(', ')}`);
      },
      // The simulated line: every device over MQTT with its own account and will, except the
      // serial station, which writes frames into its end of the PTY pair.
      simulate: async () => {
        if (!config.simulate.enabled) return;
        const sim = config.simulate;
        const scenario = sim.scenario ? loadScenarioFile(sim.scenario) : loadDemoScenario();
        const serialDevices = pair ? [{ device: SERIAL_STATION, path: pair.a, codec: 'ndjson' as const }] : [];
        let credentials: ((line: string, device: string) => { username: string; password: string } | undefined) | undefined;
        // With the Sparkplug host on, the line is one Sparkplug edge node LINE/edge (group = line),
        // on the broker the host listens to: sparkplug.brokerUrl (without an account: that broker's
        // accounts are not ours to make), else the embedded one with a sparkplug-edge account.
        const sparkplug = config.sparkplug.enabled;
        const sparkplugBroker = sparkplug ? config.sparkplug.brokerUrl : null;
        const edgeAccount = sparkplug && sparkplugBroker === null && !brokerConfig.open ? (await provisionDeviceAccounts(dataDir, brokerConfig.devicesFile, [`${line}/${SIMULATED_EDGE}`], 'sparkplug-edge')).account(`${line}/${SIMULATED_EDGE}`) : undefined;
        const simulatorUrl = sparkplugBroker ?? embeddedUrl();
        const simulator = simulateModule.create({
          line,
          seed: sim.seed,
          scenario,
          rateHz: sim.rateHz,
          speedup: sim.speedup,
          mqtt: { url: simulatorUrl, mode: sparkplug ? 'sparkplug' : 'per-device', credentials: (l, d) => credentials?.(l, d), ...(edgeAccount ? { sharedAccount: edgeAccount } : {}) },
          serialDevices,
        });
        if (!brokerConfig.open && !sparkplug) {
          const networked = simulator.model.deviceIds().filter((id) => !serialDevices.some((s) => s.device === id));
          const accounts = await provisionDeviceAccounts(dataDir, brokerConfig.devicesFile, networked.map((id) => `${line}/${id}`));
          credentials = accounts.lookup;
          if (accounts.created > 0) hooks.say(`accounts: ${accounts.created} simulated device account(s) added to ${brokerConfig.devicesFile} (passwords in ${join(dataDir, 'sim-credentials.json')}, mode 0600)`);
        }
        await startService(simulator);
        hooks.say(`simulate: line ${line}, ${simulator.model.deviceIds().length} devices${sparkplug ? ` as Sparkplug edge node ${line}/${SIMULATED_EDGE} on ${redactUrl(simulatorUrl)}` : ''} (scenario ${scenario.name}, speedup ×${sim.speedup}, seed ${sim.seed})`);
      },
    };
    for (const module of SERVICE_MODULES) await steps[module.name]();
  } catch (err) {
    await stopAll();
    throw err;
  }

  const brokerInUse = running();
  const figures = (): StatusFigures => {
    const stats = brokerInUse.stats();
    const view = dashboard?.view;
    const history = historianRef?.counters();
    const alarms = view?.activeAlerts() ?? [];
    return {
      devicesOnline: view?.onlineDevices() ?? stats.clients,
      devicesKnown: view?.snapshot().devices.length ?? stats.clients,
      eventsPerSecond: stats.messagesInPerSecond,
      commands: view?.counters.commands ?? 0,
      commandsAcked: view?.counters.commands_acked ?? 0,
      activeAlerts: alarms.filter((alarm) => alarm.state.startsWith('active')).length,
      alarmsUnacked: alarms.filter((alarm) => alarm.state.endsWith('-unacked')).length,
      influxBacklog: history ? { records: history.spool_records ?? 0, bytes: history.spool_pending_bytes ?? 0, oldestAgeSeconds: history.spool_oldest_age_seconds ?? 0 } : null,
      influxDown: managedInfluxd?.gaveUp ? 'not restarted: gave up' : managedInfluxd && !managedInfluxd.running ? 'restarting' : history && !history.influx_up && (history.spool_pending_bytes ?? 0) > 0 ? 'unreachable' : undefined,
      historianRefusing: history?.disk_full ? 'disk full' : history?.spool_refusing ? 'spool full' : undefined,
    };
  };

  return {
    broker: brokerInUse,
    dashboard,
    influx,
    childPids: children.pids(),
    services,
    status: figures,
    stop: stopAll,
  };
}
