// What every transport of the simulated devices is (DeviceTransport) and the pieces the
// networked ones share: counters, the status payload, and a command from the broker handed to
// the model (validated against the contract first, counted and logged when invalid).
import { parseTopic, validatePayload, type CommandPayload, type DeviceMessageKind, type DeviceType } from '../../contracts/index.js';
import { logger } from '../../lib/log.js';

const log = logger('simulate');

export type CommandSink = (device: string, cmd: CommandPayload) => void;

export interface TransportCounters {
  sent: number;
  commands_received: number;
  commands_invalid: number;
  connections: number;
}

export interface DeviceTransport {
  readonly counters: TransportCounters;
  start(onCommand: CommandSink): Promise<void>;
  send(device: string, kind: Exclude<DeviceMessageKind, 'status'>, payload: object): void;
  /** Abrupt loss (the will fires where there is one) and return. */
  offline(device: string): void;
  online(device: string): void;
  stop(): Promise<void>;
  /** The devices of this transport that cannot reach the world now (their link is down, or not started). */
  disconnected(): string[];
}

export interface Credentials {
  username: string;
  password: string;
}

export function newCounters(): TransportCounters {
  return { sent: 0, commands_received: 0, commands_invalid: 0, connections: 0 };
}

export function statusPayload(status: 'online' | 'offline', type: DeviceType | undefined): string {
  return JSON.stringify({ ts: Date.now(), status, ...(type ? { type } : {}) });
}

export function onCommandMessage(counters: TransportCounters, onCommand: CommandSink, topic: string, payload: Buffer): void {
  const parsed = parseTopic(topic);
  if (parsed?.kind !== 'cmd' || !parsed.device) return;
  const cmd = validatePayload('cmd', payload);
  if (!cmd.ok) {
    counters.commands_invalid++;
    log.warn({ topic, err: cmd.error }, 'simulated device ignored an invalid command');
    return;
  }
  counters.commands_received++;
  onCommand(parsed.device, cmd.value);
}
