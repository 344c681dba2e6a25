// The `broker:` section of linewatch.yaml. Every option is documented in docs/configuration.md.
import { z } from 'zod';
import { OVERFLOW_POLICIES } from './persistence/queue-limit.js';

export const brokerConfigSchema = z.strictObject({
  host: z.string().default('127.0.0.1').describe('address the listeners bind to'),
  port: z.number().int().min(0).max(65535).default(1883).describe('MQTT over TCP; 0 picks a free port'),
  wsPort: z.number().int().min(0).max(65535).nullable().default(8083).describe('MQTT over WebSocket (path /mqtt); null disables'),
  tls: z
    .strictObject({
      port: z.number().int().min(0).max(65535).default(8883),
      cert: z.string().describe('PEM certificate file'),
      key: z.string().describe('PEM private key file'),
    })
    .nullable()
    .default(null),
  open: z.boolean().default(false).describe('development only: no authentication, no ACL, any topic'),
  devicesFile: z.string().default('.linewatch/devices.json').describe('salted password hashes of devices and services'),
  maxPacketBytes: z.number().int().min(1024).max(268_435_455).default(8 * 1024 * 1024).describe('larger packets close the connection before they are buffered; 8 MiB fits a firmware image and batched readings (docs/broker.md#limits)'),
  maxConnections: z.number().int().min(1).default(10_000),
  connectTimeoutMs: z.number().int().min(100).default(10_000),
  drainTimeoutMs: z.number().int().min(100).default(5_000).describe('a subscriber that cannot take data for this long is disconnected'),
  maxPendingDeliveries: z.number().int().min(100).default(2_000).describe('messages waiting for delivery above which the broker stops reading from client sockets (backpressure)'),
  statsIntervalMs: z.number().int().min(100).default(5_000).describe('how often stats are published on $SYS/linewatch/…'),
  loginBackoff: z
    .strictObject({
      freeFailures: z.number().int().min(1).default(5).describe('failed logins in a row for one address and username, or for one account, before further attempts are refused'),
      initialMs: z.number().int().min(1).default(1_000).describe('the first refusal window; it doubles with each further failure'),
      maxMs: z.number().int().min(1).default(300_000).describe('the longest refusal window; a key with no failed login for this long is forgotten'),
      maxTracked: z.number().int().min(1).default(10_000).describe('keys remembered of each kind (address and username, account, address, known address); those not refusing are forgotten first'),
      addressFreeFailures: z.number().int().min(1).default(50).describe('failed logins in a row from one address (an IPv6 /64) across usernames before further attempts from it are refused'),
      knownAddressMs: z.number().int().min(1).default(86_400_000).describe('an address and username that logged in (or was connected) this recently is not held back by the account or address backoff'),
    })
    .prefault({})
    .describe('backoff on failed logins (password guessing)'),
  persistence: z.enum(['disk', 'memory', 'redis']).default('disk').describe('where sessions, retained messages, queued and in-flight QoS 1/2 messages and wills live: disk (<dataDir>/broker, survives a restart and a SIGKILL), memory (lost when the broker stops) or redis (docs/broker.md)'),
  redis: z
    .strictObject({
      url: z.string().nullable().default(null).describe('the Redis of `persistence: redis` (redis://HOST:PORT); null: a managed redis-server under <dataDir>/redis'),
    })
    .prefault({})
    .describe('the Redis store'),
  cluster: z.string().nullable().default(null).describe('a redis:// URL: brokers with the same one share subscriptions, retained messages, sessions and wills through it (the Redis store on that Redis); null: one node'),
  heartbeatMs: z.number().int().min(100).default(5_000).describe('how often the broker announces itself on $SYS/<id>/heartbeat; in a cluster a node silent for 3× this is dead and another publishes its clients\' wills (checked every 4×)'),
  sessionQueue: z
    .strictObject({
      maxMessages: z.number().int().min(1).default(200_000).describe("messages queued for one client's session (offline, or delivered and not acknowledged) at most"),
      overflow: z.enum(OVERFLOW_POLICIES).default('drop-newest').describe('what happens to a message for a full session: drop-newest (not queued for that session; counted, logged, health degraded)'),
    })
    .prefault({})
    .describe('the per-session queue limit'),
  validatePayloads: z.boolean().default(true).describe('refuse device payloads that fail their schema (sent to lw/_dead/{clientId})'),
});
export type BrokerConfig = z.infer<typeof brokerConfigSchema>;
