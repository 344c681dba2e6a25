// Waiting for an MQTT.js client's first CONNACK, bounded: every client linewatch opens (the
// MqttBus, the simulated devices) connects this way, so a broker that is down, refuses the login
// or never answers gives an error within the timeout and leaves no client reconnecting behind.
import type { MqttClient } from 'mqtt';
import { withTimeout } from '../lib/wait.js';

/**
 * Resolves at the first CONNACK. On an error (refused, unreachable) or after `timeoutMs`, ends the
 * client (no reconnect loop left running) and rejects with that error; `what` names the wait in
 * the timeout's message ("timed out after … ms waiting for <what>"). With `nextBrokerOnError`
 * (a list of brokers, brokerTarget) a broker that cannot be reached is not the end: MQTT.js tries
 * the next one, until a CONNACK, a refusal (its return code) or the timeout, which names the last
 * socket error.
 */
export async function untilConnected(client: MqttClient, timeoutMs: number, what: string, nextBrokerOnError = false): Promise<void> {
  let lastUnreachable: Error | undefined;
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        const onError = (err: Error & { code?: unknown }): void => {
          if (nextBrokerOnError && typeof err.code === 'string') lastUnreachable = err;
          else reject(err);
        };
        client.on('error', onError);
        client.once('connect', () => client.off('error', onError));
      }),
      timeoutMs,
      what,
    );
  } catch (err) {
    client.end(true);
    if (lastUnreachable) throw new Error(`${(err as Error).message} (last: ${lastUnreachable.message})`, { cause: err });
    throw err;
  }
}

/** One broker of a list, as MQTT.js's `servers` option takes it. */
export interface BrokerServer {
  host: string;
  port: number;
  protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss';
}

const DEFAULT_PORTS: Record<BrokerServer['protocol'], number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 };
const PROTOCOLS: Record<string, BrokerServer['protocol']> = { 'mqtt:': 'mqtt', 'tcp:': 'mqtt', 'mqtts:': 'mqtts', 'tls:': 'mqtts', 'ws:': 'ws', 'wss:': 'wss' };

/**
 * The brokers of `list` (`URL[,URL…]`, or an array), checked: each an mqtt://, mqtts://, ws:// or
 * wss:// URL with a host; WebSocket URLs of one list share their path (MQTT.js's `servers` keeps
 * one); no credentials in the URLs (they are given once, for every broker). Errors name `setting`.
 */
export function parseBrokerUrls(list: string | readonly string[], setting: string): string[] {
  const urls = (typeof list === 'string' ? list.split(',') : [...list]).map((url) => url.trim());
  const usage = `${setting} takes mqtt://HOST:PORT (also mqtts://, ws://HOST:PORT/mqtt, wss://), several separated by commas`;
  if (urls.length === 0 || urls.some((url) => url === '')) throw new Error(`${setting}: "${typeof list === 'string' ? list : list.join(',')}" has an empty broker URL; ${usage}`);
  const paths = new Set<string>();
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`${setting}: "${url}" is not a URL; ${usage}`);
    }
    if (!PROTOCOLS[parsed.protocol]) throw new Error(`${setting}: "${url}" is not an MQTT URL (${parsed.protocol}//); ${usage}`);
    if (parsed.hostname === '') throw new Error(`${setting}: "${url}" has no host; ${usage}`);
    if (urls.length > 1 && (parsed.username || parsed.password)) throw new Error(`${setting}: "${url}" carries credentials; with several brokers give them once (--username, --password)`);
    if (PROTOCOLS[parsed.protocol]!.startsWith('ws')) paths.add(parsed.pathname);
  }
  if (paths.size > 1) throw new Error(`${setting}: the WebSocket URLs have different paths (${[...paths].join(', ')}); MQTT.js uses one path for every broker of a list`);
  return urls;
}

function serverOf(url: string): BrokerServer {
  const parsed = new URL(url);
  const protocol = PROTOCOLS[parsed.protocol]!;
  return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: parsed.port ? Number(parsed.port) : DEFAULT_PORTS[protocol], protocol };
}

/**
 * What to hand MQTT.js for a list of brokers: the first URL, and with more than one, its
 * documented `servers` option — MQTT.js then takes the next server of the list at every
 * (re)connect, wrapping around, so a service whose broker went away connects to the next one.
 */
export function brokerTarget(urls: readonly string[]): { url: string; servers?: BrokerServer[] } {
  return urls.length > 1 ? { url: urls[0]!, servers: urls.map(serverOf) } : { url: urls[0]! };
}

/** The broker `client` is connected (or connecting) to: MQTT.js writes the server it dials into its options. */
export function currentBroker(client: MqttClient): string {
  const { protocol, host, port, path } = client.options as { protocol?: string; host?: string; port?: number; path?: string };
  const hostPart = host?.includes(':') ? `[${host}]` : host;
  return `${protocol ?? 'mqtt'}://${hostPart ?? '?'}:${port ?? '?'}${protocol?.startsWith('ws') ? (path ?? '') : ''}`;
}
