// The rules engine as a linewatch service module (lib/service-module.ts).
import { DELIVERY, shadowTopic, topics } from '../contracts/topics.js';
import type { ServiceModule, TopicUse } from '../lib/service-module.js';
import { rulesConfigSchema, type RulesConfig } from './config.js';
import { DEAD_LETTER_QOS, RULES_DEAD_LETTER_ID } from './dead-letters.js';
import { RulesEngine, type RulesEngineOptions } from './index.js';

/** What the live engine publishes. */
const LIVE_PUBLISHES: readonly TopicUse[] = [
  { filter: topics.cmd('+', '+'), ...DELIVERY.cmd, why: 'the commands its rules send (rules/commands.ts)' },
  { filter: topics.outcome('+', '+'), ...DELIVERY.outcome, why: 'what became of each command it sent, for the historian and dashboard' },
  { filter: topics.alerts('+'), ...DELIVERY.alert, why: 'the alerts its rules raise and clear' },
  { filter: topics.deadLetter(RULES_DEAD_LETTER_ID), qos: DEAD_LETTER_QOS, retain: false, why: 'a device message it refused (a ts too far in the future), with the reason (rules/dead-letters.ts)' },
  { filter: topics.allAlarms, ...DELIVERY.alarm, why: 'each alarm’s state, retained: the one source of truth the dashboard shows and a restarted engine reads back (rules/alarm-desk.ts)' },
];

/** What the live engine reads besides the device events the shadow set reads too. */
const LIVE_SUBSCRIBES: readonly TopicUse[] = [
  { filter: topics.ack('+', '+'), qos: 1, why: 'the acks that settle its commands' },
  { filter: topics.allAlarms, qos: 1, why: 'its alarms’ retained states, read back at start (newer than rules-state.json when an operator acted after its last save)' },
  { filter: topics.allAlarmRequests, qos: 1, why: 'operators’ acknowledge / shelve / unshelve / clear of an alarm (the dashboard’s POST /api/alerts/*)' },
];

/** The same use by a shadow rule set (rules.shadowDir): under lw/_shadow/ (rules/shadow-bus.ts), which no device is granted. */
function shadowUse(use: TopicUse): TopicUse {
  return { ...use, filter: shadowTopic(use.filter), why: `a shadow rule set (rules.shadowDir, rules/shadow-bus.ts): ${use.why}` };
}

export const rulesModule = {
  name: 'rules' as const,
  configSchema: rulesConfigSchema,
  role: 'rules',
  topics: {
    publishes: [...LIVE_PUBLISHES, ...LIVE_PUBLISHES.map(shadowUse)],
    subscribes: [
      ...[topics.state('+', '+'), topics.telemetry('+', '+'), topics.status('+', '+')].map((filter) => ({ filter, qos: 1 as const, why: 'the device events its rules react to (and its shadow set’s, rules.shadowDir)' })),
      ...LIVE_SUBSCRIBES,
      ...LIVE_SUBSCRIBES.map(shadowUse),
    ],
  },
  healthPort: 9184,
  create: (options) => new RulesEngine(options),
} satisfies ServiceModule<RulesConfig, RulesEngineOptions>;
