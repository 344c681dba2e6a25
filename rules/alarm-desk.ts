// The engine's alarms on the bus (docs/rules.md, "Alarm states"): the rules' alerts drive the
// state machine of rules/alarms.ts, every new state is published retained on
// lw/{line}/alarms/{alarmId} (emptied once normal), operators' requests on …/set are applied,
// shelving runs out on the tick, and the table goes into rules-state.json and is read back — from
// the file and from the retained topics — at start.
import type { Bus } from '../bus/bus.js';
import { DELIVERY, topics, type AlarmPayload, type AlarmSetPayload, type AlertPayload } from '../contracts/index.js';
import { LogLimiter } from '../lib/log-limit.js';
import { logger } from '../lib/log.js';
import type { Clock } from './clock.js';
import { AlarmTable, type AlarmEvent, type AlarmStep, type LineAlarm } from './alarms.js';

const log = logger('rules');

export interface AlarmDeskOptions {
  bus: Bus;
  /** Engine time: shelving, the republish after a restore. */
  clock: Clock;
  /** The line's event time, which transitions are stamped in (docs/rules.md#which-time). */
  lineNow: (line: string) => number;
  count: (counter: string) => void;
}

/**
 * How long after a restore the engine waits for the broker's retained alarm states before it
 * publishes its file's ones again (engine time). A retained state newer than the file (an operator
 * acted after the last snapshot, then the engine crashed) arrives in that time and wins; only what
 * the broker lacks (a restarted broker has lost its retained messages) is published again.
 */
export const REPUBLISH_AFTER_RESTORE_MS = 2000;

export class AlarmDesk {
  private readonly table = new AlarmTable();
  private readonly limitedLog = new LogLimiter(log);
  /** Restored alarms (line, id, rev) the broker has not shown yet, and when to publish them again. */
  private pendingRepublish = new Map<string, { line: string; id: string; rev: number }>();
  private republishAt: number | undefined;

  constructor(private readonly options: AlarmDeskOptions) {}

  /** A rule's alert was raised or cleared: its alarm is raised or returns to normal, at the alert's time. */
  alert(line: string, alert: AlertPayload): void {
    if (alert.state === 'acknowledged') return; // operators' acks come as requests (request())
    const event: AlarmEvent = alert.state === 'raised' ? { type: 'raise', alert } : { type: 'return' };
    this.publishStep(line, this.table.apply(line, alert.id, event, this.options.clock.now(), alert.ts));
  }

  /** An operator's request on lw/{line}/alarms/{topicId}/set. Refused ones are counted and logged (bounded): the dashboard checked the alarm exists. */
  request(line: string, topicId: string, request: AlarmSetPayload): void {
    this.options.count('alarm_requests');
    const act = { operator: request.operator, ...(request.comment !== undefined ? { comment: request.comment } : {}) };
    const event: AlarmEvent =
      request.action === 'shelve' ? { type: 'shelve', forMs: request.shelveForMs!, ...act } : { type: request.action === 'acknowledge' ? 'ack' : request.action, ...act };
    // A request for an alarm that is not there is refused: its line (any name a requester sends) is not asked for its time.
    const now = this.options.clock.now();
    const step = this.table.applyByTopicId(line, topicId, event, now, this.table.hasTopicId(line, topicId) ? this.options.lineNow(line) : now);
    if (step.kind === 'refused') {
      this.options.count('alarm_requests_refused');
      this.limitedLog.write('warn', 'alarm_request_refused', { line, alarm: topicId, action: request.action, operator: request.operator }, `refused ${request.operator}'s ${request.action} of alarm ${topicId} on line ${line}: ${step.error}`);
      return;
    }
    if (step.kind === 'changed') log.info({ line, alarm: step.alarm.id, state: step.alarm.state, transition: step.alarm.transition, operator: request.operator }, `alarm ${step.alarm.id}: ${request.action} by ${request.operator}`);
    this.publishStep(line, step);
  }

  /** A state read back from lw/{line}/alarms/+ (retained after a restart, or this engine's own echo): taken if newer. */
  readBack(line: string, alarm: AlarmPayload): void {
    if (this.table.adopt(line, alarm)) this.options.count('alarms_read_back');
    const pending = this.pendingRepublish.get(`${line}\u0000${alarm.id}`);
    if (pending && alarm.rev >= pending.rev) this.pendingRepublish.delete(`${line}\u0000${alarm.id}`);
  }

  /** Shelving that ran out at engine time `now`. */
  tick(now: number): void {
    for (const { line, alarm } of this.table.unshelveDue(now, this.options.lineNow)) this.publish(line, alarm);
    if (this.republishAt !== undefined && now >= this.republishAt) this.republishRestored();
  }

  /** Every alarm that is not normal (shelved ones too). */
  all(): LineAlarm[] {
    return this.table.all();
  }

  get activeCount(): number {
    return this.table.size;
  }

  snapshot(): LineAlarm[] {
    return this.table.all();
  }

  /**
   * Puts saved alarms back (rules-state.json) without publishing them yet: the broker's retained
   * states are read back first (readBack, newer wins), and REPUBLISH_AFTER_RESTORE_MS later the
   * ones it did not show are published again, retained (a restarted broker has lost them).
   */
  restore(saved: readonly LineAlarm[]): number {
    let restored = 0;
    for (const { line, alarm } of saved) {
      if (!this.table.adopt(line, alarm)) continue;
      restored++;
      this.pendingRepublish.set(`${line}\u0000${alarm.id}`, { line, id: alarm.id, rev: alarm.rev });
    }
    if (restored > 0) this.republishAt = this.options.clock.now() + REPUBLISH_AFTER_RESTORE_MS;
    return restored;
  }

  private republishRestored(): void {
    this.republishAt = undefined;
    const pending = [...this.pendingRepublish.values()];
    this.pendingRepublish.clear();
    for (const { line, id } of pending) {
      const current = this.table.get(line, id);
      if (current) this.publish(line, current);
    }
  }

  private publishStep(line: string, step: AlarmStep): void {
    if (step.kind === 'changed') this.publish(line, step.alarm);
  }

  private publish(line: string, alarm: AlarmPayload): void {
    this.options.count('alarm_transitions');
    const topic = topics.alarm(line, alarm.id);
    const failed = (err: unknown): void => {
      this.options.count('publish_errors');
      log.warn({ err: (err as Error).message, alarm: alarm.id, state: alarm.state }, 'could not publish an alarm state');
    };
    // The normal state (stored by the historian as the last transition), then the retained topic
    // emptied; both handed to the bus now, so they go out in this order, before any later state.
    this.options.bus.publish(topic, JSON.stringify(alarm), DELIVERY.alarm).catch(failed);
    if (alarm.state === 'normal') this.options.bus.publish(topic, '', DELIVERY.alarm).catch(failed);
  }
}
