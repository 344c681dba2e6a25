// The Sparkplug B primary host as a linewatch service module (lib/service-module.ts). Its account
// (role sparkplug, named sparkplug.hostId on the embedded broker) speaks Sparkplug on spBv1.0/
// and, standing for the Sparkplug devices, the device topics of any linewatch device.
// SPARKPLUG_EDGE_ROLE is what a Sparkplug edge node's account (GROUP/EDGE) may do: not a
// service of ours but the edge nodes', so config/services.ts adds it to the role table beside
// the modules' roles.
import { devicePublishes, deviceSubscribes } from '../contracts/device-topics.js';
import type { ServiceModule, TopicDeclaration } from '../lib/service-module.js';
import { sparkplugConfigSchema, type SparkplugConfig } from './config.js';
import { SparkplugHost, type SparkplugHostOptions } from './host.js';
import { SPARKPLUG_NAMESPACE as NS } from '../contracts/sparkplug/topics.js';
import { RAW_METRICS_FILTER } from '../contracts/sparkplug/raw-metrics.js';

export const sparkplugModule = {
  name: 'sparkplug' as const,
  configSchema: sparkplugConfigSchema,
  role: 'sparkplug',
  topics: {
    publishes: [
      ...devicePublishes('+/+'),
      { filter: `${NS}/STATE/{account}`, qos: 1, retain: true, why: 'its STATE birth, and its will (sparkplug/host.ts)' },
      { filter: `${NS}/+/NCMD/+`, qos: 0, retain: false, why: 'rebirth requests and node metric writes (sparkplug/host.ts)' },
      { filter: `${NS}/+/DCMD/+/+`, qos: 0, retain: false, why: 'device metric writes for linewatch commands (sparkplug/host.ts)' },
      { filter: RAW_METRICS_FILTER, qos: 1, retain: false, why: 'each birth, data and death with its raw metrics and datatypes, for the historian (sparkplug/raw-metrics.ts)' },
    ],
    subscribes: [
      ...deviceSubscribes('+/+'),
      { filter: `${NS}/STATE/{account}`, qos: 1, why: 'its own STATE, first, so a stale will is answered with a new birth' },
      { filter: `${NS}/#`, qos: 1, why: 'every edge node and device message' },
    ],
  },
  healthPort: 9187,
  create: (options) => new SparkplugHost(options),
} satisfies ServiceModule<SparkplugConfig, SparkplugHostOptions>;

/** A Sparkplug edge node account GROUP/EDGE: its own N/D messages, its commands, and the hosts' STATE. */
export const SPARKPLUG_EDGE_ROLE: { role: 'sparkplug-edge'; topics: TopicDeclaration } = {
  role: 'sparkplug-edge',
  topics: {
    publishes: ['NBIRTH', 'NDEATH', 'NDATA'].map((type) => ({ filter: `${NS}/{group}/${type}/{edge}`, qos: 1 as const, retain: false, why: `its ${type}` })).concat(
      ['DBIRTH', 'DDEATH', 'DDATA'].map((type) => ({ filter: `${NS}/{group}/${type}/{edge}/+`, qos: 1 as const, retain: false, why: `its devices' ${type}` })),
    ),
    subscribes: [
      { filter: `${NS}/{group}/NCMD/{edge}/#`, qos: 1, why: 'commands to it (rebirth, metric writes); Tahu subscribes NCMD/EDGE/#' },
      { filter: `${NS}/{group}/DCMD/{edge}/#`, qos: 1, why: 'commands to its devices' },
      { filter: `${NS}/STATE/+`, qos: 1, why: 'whether its primary host is online' },
    ],
  },
};
