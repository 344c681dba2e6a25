// The devices of an inline rule-test scenario: exactly the messages the test lists, at their
// times, and no simulator. A device answers every command it is given (unexpired) with `accepted`
// then `done` at once — an ideal device — so a test is about what the rules command, not about
// device physics; it reports nothing else (a setpoint it was told is not echoed in telemetry).
import type { CommandPayload, DeviceType, StatePayload, TelemetryPayload } from '../../contracts/schemas.js';
import type { SimEvent } from '../../simulators/model.js';
import type { DeviceSource } from '../scenario-run.js';
import type { ScriptedEvent } from './format.js';

/** More messages than this (every … until … expanded) is a mistake in the test, not a test. */
export const MAX_SCRIPTED_MESSAGES = 100_000;

/** The type a device of the demo line's naming has (line-ctl, conv-N, st-N, env-N), else none. */
export function demoDeviceType(id: string): DeviceType | undefined {
  if (id === 'line-ctl') return 'line-controller';
  if (/^conv-\d+$/.test(id)) return 'conveyor';
  if (/^st-\d+$/.test(id)) return 'station';
  if (/^env-\d+$/.test(id)) return 'sensor';
  return undefined;
}

interface Timed {
  at: number;
  event: ScriptedEvent;
}

/** The messages of a script in time order (each `every … until …` expanded); throws past MAX_SCRIPTED_MESSAGES. */
export function expandScript(events: readonly ScriptedEvent[]): Timed[] {
  const out: Timed[] = [];
  for (const event of events) {
    const until = event.until ?? event.at;
    const step = event.every ?? 1;
    for (let at = event.at; at <= until; at += step) {
      out.push({ at, event });
      if (out.length > MAX_SCRIPTED_MESSAGES) throw new RangeError(`the inline scenario makes more than ${MAX_SCRIPTED_MESSAGES} messages; use a longer every or a shorter until`);
    }
  }
  // Stable: messages at the same time keep the order they are written in.
  return out.sort((a, b) => a.at - b.at);
}

/** The last time anything happens in the script (the default duration runs a minute past it). */
export function scriptEnd(events: readonly ScriptedEvent[]): number {
  return Math.max(0, ...events.map((e) => e.until ?? e.at));
}

export class ScriptedLine implements DeviceSource {
  private elapsed = 0;
  private next = 0;
  private readonly seq = new Map<string, number>();
  private readonly messages: Timed[];

  constructor(
    events: readonly ScriptedEvent[],
    private readonly startTime: number,
  ) {
    this.messages = expandScript(events);
  }

  now(): number {
    return this.startTime + this.elapsed;
  }

  deviceType(id: string): DeviceType | undefined {
    return this.messages.find((m) => m.event.device === id)?.event.type ?? demoDeviceType(id);
  }

  /**
   * The messages of [now, now + ms): runScenario hands them to the engine before its clock moves
   * on from now, so a message written `at 5s` reaches the engine at 5.0 s, with ts = 5.0 s.
   */
  advance(ms: number): SimEvent[] {
    this.elapsed += ms;
    const out: SimEvent[] = [];
    for (let m = this.messages[this.next]; m && m.at < this.elapsed; m = this.messages[++this.next]) out.push(this.message(m));
    return out;
  }

  command(device: string, command: CommandPayload, expiryClock: number): SimEvent[] {
    if (command.expiresAt < expiryClock) return [];
    const ts = this.now();
    return [
      { type: 'message', device, kind: 'ack', payload: { id: command.id, result: 'accepted', ts, seq: this.nextSeq(device) } },
      { type: 'message', device, kind: 'ack', payload: { id: command.id, result: 'done', ts, seq: this.nextSeq(device) } },
    ];
  }

  private nextSeq(device: string): number {
    const seq = this.seq.get(device) ?? 0;
    this.seq.set(device, seq + 1);
    return seq;
  }

  private message({ at, event }: Timed): SimEvent {
    const ts = this.startTime + at;
    const type = event.type ?? demoDeviceType(event.device);
    const typed = type ? { type } : {};
    if (event.status) return { type: event.status, device: event.device };
    if (event.telemetry) {
      const payload: TelemetryPayload = { ts, seq: this.nextSeq(event.device), values: { ...event.telemetry }, ...typed };
      return { type: 'message', device: event.device, kind: 'telemetry', payload };
    }
    const payload: StatePayload = { ts, seq: this.nextSeq(event.device), state: event.state!, ...typed };
    if (event.reason !== undefined) payload.reason = event.reason;
    if (event.strategy !== undefined) payload.strategy = event.strategy;
    return { type: 'message', device: event.device, kind: 'state', payload };
  }
}
