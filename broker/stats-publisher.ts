// The broker's stats on $SYS/linewatch/…: the rates sampled once a second (and the rate-limited
// log flushed with them), everything published every broker.statsIntervalMs.
import type { LogLimiter } from '../lib/log-limit.js';
import type { AedesPublish } from './drop-refused.js';
import type { QueueLimit } from './persistence/queue-limit.js';
import type { BrokerCounters } from './stats.js';

/** How often the rates are sampled and the rate-limited log is flushed. */
const SAMPLE_INTERVAL_MS = 1000;

/** How many full sessions `$SYS/linewatch/session_queue/full_clients` names (the count is on `…/full`). */
const FULL_CLIENTS_LISTED = 100;

/** Starts the timers (unref'd: they keep no process alive); returns what stops them. */
export function startStatsTimers(counters: BrokerCounters, limitedLog: LogLimiter, publish: AedesPublish, statsIntervalMs: number, queueLimit: QueueLimit): () => void {
  const sampler = setInterval(() => {
    counters.sample();
    limitedLog.flush();
  }, SAMPLE_INTERVAL_MS);
  sampler.unref();
  counters.sample();
  const statsTimer = setInterval(() => publishStats(counters, publish, queueLimit), statsIntervalMs);
  statsTimer.unref();
  return () => {
    clearInterval(sampler);
    clearInterval(statsTimer);
  };
}

/** $SYS/linewatch/stats (all of it, JSON) plus one plain number per topic for simple dashboards. */
function publishStats(counters: BrokerCounters, publish: AedesPublish, queueLimit: QueueLimit): void {
  const stats = counters.stats();
  const full = queueLimit.fullSessions();
  const values: [string, string][] = [
    ['stats', JSON.stringify({ ts: Date.now(), ...stats })],
    ['clients/connected', String(stats.clients)],
    ['messages/in_per_second', String(stats.messagesInPerSecond)],
    ['messages/out_per_second', String(stats.messagesOutPerSecond)],
    ...Object.entries(stats.rejects).map(([reason, count]): [string, string] => [`rejects/${reason}`, String(count)]),
    ['session_queue/dropped', String(queueLimit.dropped)],
    ['session_queue/full', String(full.length)],
    ['session_queue/full_clients', JSON.stringify(full.slice(0, FULL_CLIENTS_LISTED))],
  ];
  for (const [topic, payload] of values) {
    publish({ cmd: 'publish', topic: `$SYS/linewatch/${topic}`, payload: Buffer.from(payload), qos: 0, retain: false, dup: false }, null, () => undefined);
  }
}
