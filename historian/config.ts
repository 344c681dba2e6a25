// The `historian:` section of linewatch.yaml (docs/configuration.md, docs/historian.md).
import { z } from 'zod';
import { lineOwnershipShape, oneOwnership } from '../contracts/line-workers.js';
import { DEFAULT_PERIOD_POLICY } from '../contracts/period-rows.js';
import { SHARE_NAME_PATTERN } from '../contracts/topics.js';

/** The error for a historian.oee block: the OEE producer is its own service now, with the same keys. */
const OEE_MOVED =
  'moved to the top-level oee: section (the OEE producer is its own service now): move the block out of historian: to the top level as oee:, with the same keys (oee.enabled, oee.publishIntervalMs, oee.idealRatePerMin, oee.goodField, oee.scrapField, oee.lines); see docs/configuration.md#oee';

/** An InfluxQL duration (`30m`, `7d`, `52w`) or INF (keep forever). */
const duration = z.string().regex(/^(INF|\d+(ns|u|µ|ms|s|m|h|d|w))$/, 'must be an InfluxQL duration such as 7d, 90d, 12h or INF');

export const historianConfigSchema = z.strictObject({
  enabled: z.boolean().default(true),
  influxUrl: z.string().url().nullable().default(null).describe('InfluxDB 1.x API base URL; null starts a managed influxd'),
  database: z.string().min(1).default('linewatch'),
  /** Retention policy to write into; unset = the database's default (raw). For InfluxDB 2.x/3.x, the one of the DBRP mapping. */
  retentionPolicy: z.string().min(1).optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  batchSize: z.number().int().min(1).default(5000),
  flushIntervalMs: z.number().int().min(10).default(1000),
  /** Which lines this historian stores, when several run (docs/historian.md, "Running several workers"): null = every line. */
  ...lineOwnershipShape,
  /**
   * Share the subscription with the other historians of this group on an MQTT 5 broker
   * ($share/{sharedGroup}/…: each message goes to one of them). null: not shared.
   */
  sharedGroup: z.string().regex(SHARE_NAME_PATTERN, 'must be a share name: letters, digits, - and _').nullable().default(null),
  /** null: <dataDir>/historian-spool (a worker of some lines: historian-spool-<worker>, docs/historian.md) */
  spoolDir: z.string().nullable().default(null),
  spoolMaxBytes: z.number().int().min(1024 * 1024).default(1024 * 1024 * 1024),
  spoolSegmentBytes: z.number().int().min(64 * 1024).default(64 * 1024 * 1024),
  /** Group fsync of the spool; 0 = fsync every event (slow, survives power loss immediately). */
  fsyncIntervalMs: z.number().int().min(0).default(1000),
  /** Alarm (error log + counter spool_alarm) once the spool is this full, counting the free disk space too (docs/historian.md). */
  spoolAlarmRatio: z.number().min(0.01).max(1).default(0.8),
  retryInitialMs: z.number().int().min(1).default(200),
  retryMaxMs: z.number().int().min(10).default(30_000),
  requestTimeoutMs: z.number().int().min(100).default(30_000),
  /** Create the database, retention policies and continuous queries on start (needs admin rights; off for InfluxDB 2.x/3.x). */
  setupDatabase: z.boolean().default(true),
  retention: z
    .strictObject({
      raw: duration.default('7d'),
      minute: duration.default('90d'),
      hour: duration.default('INF'),
      /** How long the period rows (oee, downtime, data_quality) are kept, in historian.periodRetentionPolicy. */
      periods: duration.default('INF'),
    })
    .prefault({}),
  /**
   * The retention policy the period rows (measurements oee, downtime, data_quality) are written to
   * and read from, kept for retention.periods: a plant reads last month's OEE by shift and downtime
   * Pareto after raw's days are gone (docs/historian.md#retention). For InfluxDB 2.x/3.x, a DBRP
   * mapping's retention policy, as for historian.retentionPolicy.
   */
  periodRetentionPolicy: z.string().min(1).default(DEFAULT_PERIOD_POLICY),
  /** Data quality per device (docs/historian.md#data-quality). */
  quality: z
    .strictObject({
      /** How often each device's counts of the interval are stored (one data_quality point per device that sent something). */
      intervalMs: z.number().int().min(1000).default(60_000),
      /** A ts further than this behind the newest ts seen for its device counts as late_ts. */
      lateAfterMs: z.number().int().min(0).default(60_000),
      /** A ts further than this ahead of the historian's clock counts as future_ts. */
      futureAheadMs: z.number().int().min(0).default(5000),
      /** Devices counted by name in /metrics and InfluxDB; the rest together, as line and device `*`. */
      maxDevices: z.number().int().min(1).default(1000),
    })
    .prefault({}),
  /**
   * Where the historian runs: "main", on the thread of the process it is in (with the broker, in
   * `linewatch up`), or "worker", in a worker thread of its own, so that it uses the second core
   * (docs/historian.md#worker-thread).
   */
  thread: z.enum(['main', 'worker']).default('main'),
  /** Moved to the top-level oee: section (oee/config.ts); refused here with where it went. */
  oee: z.never({ error: OEE_MOVED }).optional(),
}).superRefine(oneOwnership('historian'));
export type HistorianConfig = z.infer<typeof historianConfigSchema>;
