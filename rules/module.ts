// The rules engine as a linewatch service module (lib/service-module.ts).
import { DELIVERY, topics } from '../contracts/topics.js';
import type { ServiceModule } from '../lib/service-module.js';
import { rulesConfigSchema, type RulesConfig } from './config.js';
import { DEAD_LETTER_QOS, RULES_DEAD_LETTER_ID } from './dead-letters.js';
import { RulesEngine, type RulesEngineOptions } from './index.js';

export const rulesModule = {
  name: 'rules' as const,
  configSchema: rulesConfigSchema,
  role: 'rules',
  topics: {
    publishes: [
      { filter: topics.cmd('+', '+'), ...DELIVERY.cmd, why: 'the commands its rules send (rules/commands.ts)' },
      { filter: topics.outcome('+', '+'), ...DELIVERY.outcome, why: 'what became of each command it sent, for the historian and dashboard' },
      { filter: topics.alerts('+'), ...DELIVERY.alert, why: 'the alerts its rules raise and clear' },
      { filter: topics.deadLetter(RULES_DEAD_LETTER_ID), qos: DEAD_LETTER_QOS, retain: false, why: 'a device message it refused (a ts too far in the future), with the reason (rules/dead-letters.ts)' },
      { filter: topics.allAlarms, ...DELIVERY.alarm, why: 'each alarm’s state, retained: the one source of truth the dashboard shows and a restarted engine reads back (rules/alarm-desk.ts)' },
    ],
    subscribes: [
      ...topics.allDeviceEvents.map((filter) => ({ filter, qos: 1 as const, why: 'the device events its rules react to (acks settle its commands)' })),
      { filter: topics.allAlarms, qos: 1, why: 'its alarms’ retained states, read back at start (newer than rules-state.json when an operator acted after its last save)' },
      { filter: topics.allAlarmRequests, qos: 1, why: 'operators’ acknowledge / shelve / unshelve / clear of an alarm (the dashboard’s POST /api/alerts/*)' },
    ],
  },
  healthPort: 9184,
  create: (options) => new RulesEngine(options),
} satisfies ServiceModule<RulesConfig, RulesEngineOptions>;
