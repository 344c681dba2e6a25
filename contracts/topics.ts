// The topic namespace every linewatch service and device speaks (docs/topics-and-payloads.md).
//
//   lw/{line}/{device}/state | telemetry | status | cmd | cmd/ack | cmd/outcome
//   lw/{line}/alerts         lw/{line}/summary
//   lw/{line}/oee            one hour's, shift's or day's OEE of the line or a station (the OEE service's)
//   lw/{line}/downtime       one stop interval of the line or a device (the OEE service's)
//   lw/{line}/alarms/{alarmId}       one alarm's state (retained; the rules engine's)
//   lw/{line}/alarms/{alarmId}/set   an operator's acknowledge / shelve / unshelve / clear of it
//   lw/_dead/{clientId}      payloads the broker refused, with the reason
//   lw/_shadow/{line}/…      a shadow rule set's commands, outcomes, alerts and alarms: the same
//                            topics under their own root, which no device is granted (shadowTopic)

export const ROOT = 'lw';

/** Message kinds a device publishes. */
export const DEVICE_KINDS = ['state', 'telemetry', 'status', 'ack'] as const;
export type DeviceMessageKind = (typeof DEVICE_KINDS)[number];

export type MessageKind = DeviceMessageKind | 'cmd' | 'outcome' | 'alert' | 'summary' | 'oeePeriod' | 'downtime' | 'alarm' | 'alarmSet';
/** Kinds whose topic names a line only: lw/{line}/alerts, lw/{line}/summary, lw/{line}/oee, lw/{line}/downtime. */
export type LineMessageKind = 'alert' | 'summary' | 'oeePeriod' | 'downtime';
/** Kinds whose topic names a line and an alarm: lw/{line}/alarms/{alarmId}[/set]. */
export type AlarmMessageKind = 'alarm' | 'alarmSet';
/** Kinds whose topic names a device: lw/{line}/{device}/… */
export type DeviceTopicKind = Exclude<MessageKind, LineMessageKind | AlarmMessageKind>;

/** How a kind is published: the QoS its publishers use at least, and whether the broker keeps the last one. */
export interface Delivery {
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

/**
 * The one delivery rule per kind (docs/topics-and-payloads.md, "Namespace"). State and status are
 * retained, so a new subscriber learns each device's current state and whether it is online; so
 * is each alarm's state, so a (re)started dashboard or engine learns every alarm that is not
 * normal at once (an empty retained payload removes it); nothing else is (a summary comes again
 * every oee.publishIntervalMs). Telemetry is QoS 0 from a
 * device that sends it every period; a publisher that must not lose it (the gateway's
 * store-and-forward outbox) publishes everything at QoS 1.
 */
export const DELIVERY: { readonly [K in MessageKind]: Delivery } = {
  state: { qos: 1, retain: true },
  telemetry: { qos: 0, retain: false },
  status: { qos: 1, retain: true },
  cmd: { qos: 1, retain: false },
  ack: { qos: 1, retain: false },
  outcome: { qos: 1, retain: false },
  alert: { qos: 1, retain: false },
  summary: { qos: 1, retain: false },
  oeePeriod: { qos: 1, retain: false },
  downtime: { qos: 1, retain: false },
  alarm: { qos: 1, retain: true },
  alarmSet: { qos: 1, retain: false },
};

/** A line or device id: letters, digits, '-' and '_', 1–64 characters (no MQTT wildcards or '/'). */
export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/**
 * An alarm's topic level: its id (`rule:line/device`, `oscillation:rule`) with '/' as '.'. It
 * always holds a ':', which no device id does, so lw/{line}/alarms/{alarmId} never reads as a
 * topic of a device named "alarms".
 */
export const ALARM_TOPIC_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.:-]{1,127}$/;

/** The topic level of the alarm with this id (`overheat:A/conv-2` → `overheat:A.conv-2`). */
export function alarmTopicId(alarmId: string): string {
  return alarmId.replaceAll('/', '.');
}

/**
 * The root of what a shadow rule set publishes (docs/rules.md#shadow): `lw/X` becomes
 * `lw/_shadow/X`. It is not a line: no device account is granted anything under it, and no
 * shadow topic parses as a device topic (parseTopic gives undefined), so a shadow command can
 * reach no device.
 */
export const SHADOW_ROOT = `${ROOT}/_shadow`;

/** The shadow topic (or filter) of a linewatch topic: `lw/A/conv-1/cmd` → `lw/_shadow/A/conv-1/cmd`. */
export function shadowTopic(topic: string): string {
  if (!topic.startsWith(`${ROOT}/`) || topic.startsWith(`${SHADOW_ROOT}/`)) throw new Error(`shadowTopic: ${topic} is not a live linewatch topic`);
  return `${SHADOW_ROOT}/${topic.slice(ROOT.length + 1)}`;
}

/** The live topic a shadow topic stands for (`lw/_shadow/A/alerts` → `lw/A/alerts`), or undefined for any other topic. */
export function unshadowTopic(topic: string): string | undefined {
  return topic.startsWith(`${SHADOW_ROOT}/`) ? `${ROOT}/${topic.slice(SHADOW_ROOT.length + 1)}` : undefined;
}

/** What a device reports about itself (its acks aside): the events a shadow rule set reads live. */
export const DEVICE_EVENT_KINDS = ['state', 'telemetry', 'status'] as const;

/**
 * Whether `filter` is a filter (or topic) of device events: lw/{line or +}/{device or +}/state,
 * telemetry or status — every line's (lw/+/+/state) or one worker's (lw/A/+/state). No shadow
 * topic is one.
 */
export function isDeviceEventFilter(filter: string): boolean {
  const levels = filter.split('/');
  if (levels.length !== 4) return false;
  const [root, line, device, kind] = levels as [string, string, string, string];
  const idOrWildcard = (level: string): boolean => level === '+' || isValidId(level);
  return root === ROOT && `${root}/${line}` !== SHADOW_ROOT && idOrWildcard(line) && idOrWildcard(device) && (DEVICE_EVENT_KINDS as readonly string[]).includes(kind);
}

export const topics = {
  state: (line: string, device: string) => `${ROOT}/${line}/${device}/state`,
  telemetry: (line: string, device: string) => `${ROOT}/${line}/${device}/telemetry`,
  status: (line: string, device: string) => `${ROOT}/${line}/${device}/status`,
  cmd: (line: string, device: string) => `${ROOT}/${line}/${device}/cmd`,
  ack: (line: string, device: string) => `${ROOT}/${line}/${device}/cmd/ack`,
  /** What became of a command (accepted, done, rejected, failed, expired, blocked), from its sender. */
  outcome: (line: string, device: string) => `${ROOT}/${line}/${device}/cmd/outcome`,
  alerts: (line: string) => `${ROOT}/${line}/alerts`,
  summary: (line: string) => `${ROOT}/${line}/summary`,
  /** One period's OEE (hour, shift, day) of the line or one station; republished while the period can change. */
  oeePeriod: (line: string) => `${ROOT}/${line}/oee`,
  /** One stop interval of the line or one device; republished while it is open, once more when it ends. */
  downtime: (line: string) => `${ROOT}/${line}/downtime`,
  /** One alarm's state, retained (`alarmId` as in its payload; alarmTopicId makes it one level). */
  alarm: (line: string, alarmId: string) => `${ROOT}/${line}/alarms/${alarmTopicId(alarmId)}`,
  /** An operator's request about one alarm. */
  alarmSet: (line: string, alarmId: string) => `${ROOT}/${line}/alarms/${alarmTopicId(alarmId)}/set`,
  deadLetter: (clientId: string) => `${ROOT}/_dead/${clientId}`,
  /** Subscription filters. */
  all: `${ROOT}/#`,
  allDeviceEvents: [`${ROOT}/+/+/state`, `${ROOT}/+/+/telemetry`, `${ROOT}/+/+/status`, `${ROOT}/+/+/cmd/ack`],
  deadLetters: `${ROOT}/_dead/#`,
  allOutcomes: `${ROOT}/+/+/cmd/outcome`,
  allAlarms: `${ROOT}/+/alarms/+`,
  allAlarmRequests: `${ROOT}/+/alarms/+/set`,
  /** Everything a shadow rule set publishes. */
  allShadow: `${SHADOW_ROOT}/#`,
} as const;

/** The topic of a message of `kind`: the one kind → topic mapping. */
export function topicOf(kind: DeviceTopicKind, line: string, device: string): string;
export function topicOf(kind: LineMessageKind, line: string): string;
export function topicOf(kind: AlarmMessageKind, line: string, alarmId: string): string;
export function topicOf(kind: MessageKind, line: string, device?: string): string {
  switch (kind) {
    case 'alarm':
      return topics.alarm(line, device!);
    case 'alarmSet':
      return topics.alarmSet(line, device!);
    case 'alert':
      return topics.alerts(line);
    case 'summary':
      return topics.summary(line);
    case 'oeePeriod':
      return topics.oeePeriod(line);
    case 'downtime':
      return topics.downtime(line);
    default:
      return topics[kind](line, device!);
  }
}

export interface ParsedTopic {
  readonly kind: MessageKind;
  readonly line: string;
  /** Absent for line-level topics (alerts, summary, alarms). */
  readonly device?: string;
  /** The alarm's topic level (alarmTopicId), for lw/{line}/alarms/{alarmId}[/set]. */
  readonly alarm?: string;
}

/**
 * Topics parsed lately, and what they parsed to (null: not a linewatch topic). A line's devices
 * publish on the same few topics over and over, and the broker parses the topic of every publish
 * (split, two id checks, a join: 3.4 % of its busy time at 20k msgs/s before this memo). Bounded,
 * in two generations: when the newer holds PARSED_TOPICS_KEPT topics it becomes the older one and
 * a new one starts, and a topic found in the older is kept in the newer again — so up to twice
 * that many topics in steady use stay remembered, and a flood of distinct topics costs a parse
 * each, as before. A topic longer than any linewatch topic can be is parsed and not kept (at most
 * ~5 MiB of keys).
 */
let parsedTopics = new Map<string, ParsedTopic | null>();
let parsedBefore = new Map<string, ParsedTopic | null>();
export const PARSED_TOPICS_KEPT = 4096;
const KEPT_TOPIC_LENGTH = 320; // the longest linewatch topic (an alarm's /set) is 271

/** Parses a linewatch topic; returns undefined for anything outside the namespace. */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const kept = parsedTopics.get(topic);
  if (kept !== undefined) return kept ?? undefined;
  const before = parsedBefore.get(topic);
  const parsed = before !== undefined ? (before ?? undefined) : parseTopicLevels(topic);
  if (topic.length > KEPT_TOPIC_LENGTH) return parsed;
  if (parsedTopics.size >= PARSED_TOPICS_KEPT) {
    parsedBefore = parsedTopics;
    parsedTopics = new Map();
  }
  parsedTopics.set(topic, parsed === undefined ? null : Object.isFrozen(parsed) ? parsed : Object.freeze(parsed));
  return parsed;
}

function parseTopicLevels(topic: string): ParsedTopic | undefined {
  const parts = topic.split('/');
  if (parts[0] !== ROOT || parts.length < 3) return undefined;
  const line = parts[1]!;
  if (!isValidId(line)) return undefined;
  if (parts.length === 3) {
    if (parts[2] === 'alerts') return { kind: 'alert', line };
    if (parts[2] === 'summary') return { kind: 'summary', line };
    if (parts[2] === 'oee') return { kind: 'oeePeriod', line };
    if (parts[2] === 'downtime') return { kind: 'downtime', line };
    return undefined;
  }
  if (parts[2] === 'alarms' && ALARM_TOPIC_ID_PATTERN.test(parts[3]!)) {
    if (parts.length === 4) return { kind: 'alarm', line, alarm: parts[3]! };
    if (parts.length === 5 && parts[4] === 'set') return { kind: 'alarmSet', line, alarm: parts[3]! };
    return undefined;
  }
  const device = parts[2]!;
  if (!isValidId(device)) return undefined;
  const rest = parts.slice(3).join('/');
  switch (rest) {
    case 'state':
    case 'telemetry':
    case 'status':
    case 'cmd':
      return { kind: rest, line, device };
    case 'cmd/ack':
      return { kind: 'ack', line, device };
    case 'cmd/outcome':
      return { kind: 'outcome', line, device };
    default:
      return undefined;
  }
}

/** The prefix of an MQTT 5 shared subscription: `$share/{group}/{filter}` (MQTT 5 §4.8.2). */
export const SHARED_PREFIX = '$share/';

/** `filter` as a subscription shared by `group`: each message goes to one subscriber of the group. */
export function sharedFilter(group: string, filter: string): string {
  return `${SHARED_PREFIX}${group}/${filter}`;
}

/** The topic filter of a subscription: `filter` without a `$share/{group}/` prefix. */
export function unsharedFilter(filter: string): string {
  if (!filter.startsWith(SHARED_PREFIX)) return filter;
  const end = filter.indexOf('/', SHARED_PREFIX.length);
  return end < 0 ? filter : filter.slice(end + 1);
}

/** A share name: no '/', '+' or '#' (MQTT 5 §4.8.2), and kept to an id's characters. */
export const SHARE_NAME_PATTERN = ID_PATTERN;

/** MQTT topic-filter matching ('+' one level, '#' the rest), per MQTT 3.1.1 §4.7. */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  // A filter without wildcards matches only itself: no split (the broker's ACL checks a device's
  // literal grants on every publish, most of them another topic's).
  if (!filter.includes('+') && !filter.includes('#')) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  // Wildcards at the first level do not match topics starting with '$' (MQTT-4.7.2-1).
  if (t[0]?.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
