// The `historian:` section of linewatch.yaml (docs/configuration.md, docs/historian.md).
import { z } from 'zod';

/** An InfluxQL duration (`30m`, `7d`, `52w`) or INF (keep forever). */
const duration = z.string().regex(/^(INF|\d+(ns|u|µ|ms|s|m|h|d|w))$/, 'must be an InfluxQL duration such as 7d, 90d, 12h or INF');

export const oeeLineSchema = z.strictObject({
  idealRatePerMin: z.number().positive().optional().describe('ideal output of this line, parts per minute'),
  countDevice: z.string().optional().describe('the device whose good/scrap counters are the line output (default: the line controller, else every device)'),
});

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
  /** null: <dataDir>/historian-spool */
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
    })
    .prefault({}),
  oee: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** How often each line's figures are published on lw/{line}/summary (and so stored). */
      publishIntervalMs: z.number().int().min(100).default(10_000),
      /** Default ideal output, parts per minute, for lines without their own (12 = the demo line's 5 s cycle). */
      idealRatePerMin: z.number().positive().default(12),
      /** Telemetry fields holding cumulative good / scrap part counters. */
      goodField: z.string().default('goodCount'),
      scrapField: z.string().default('scrapCount'),
      lines: z.record(z.string(), oeeLineSchema).default({}),
    })
    .prefault({}),
});
export type HistorianConfig = z.infer<typeof historianConfigSchema>;
