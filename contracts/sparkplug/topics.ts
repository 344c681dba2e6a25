// A contract shared by the Sparkplug host (sparkplug/) and the simulated edge nodes (simulators/).
// Sparkplug B topics (spec 3.0 §4.1): spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]
// and the host's own spBv1.0/STATE/{host_id}.

export const SPARKPLUG_NAMESPACE = 'spBv1.0';

export const NODE_MESSAGE_TYPES = ['NBIRTH', 'NDEATH', 'NDATA', 'NCMD'] as const;
export const DEVICE_MESSAGE_TYPES = ['DBIRTH', 'DDEATH', 'DDATA', 'DCMD'] as const;
export type NodeMessageType = (typeof NODE_MESSAGE_TYPES)[number];
export type DeviceMessageType = (typeof DEVICE_MESSAGE_TYPES)[number];

export type SparkplugTopic =
  | { kind: 'state'; hostId: string }
  | { kind: 'node'; type: NodeMessageType; group: string; edge: string }
  | { kind: 'device'; type: DeviceMessageType; group: string; edge: string; device: string };

export const sparkplugTopics = {
  state: (hostId: string) => `${SPARKPLUG_NAMESPACE}/STATE/${hostId}`,
  node: (type: NodeMessageType, group: string, edge: string) => `${SPARKPLUG_NAMESPACE}/${group}/${type}/${edge}`,
  device: (type: DeviceMessageType, group: string, edge: string, device: string) => `${SPARKPLUG_NAMESPACE}/${group}/${type}/${edge}/${device}`,
  all: `${SPARKPLUG_NAMESPACE}/#`,
} as const;

/** Parses a Sparkplug B topic; undefined for anything else (a message type the spec does not have, a wrong level count). */
export function parseSparkplugTopic(topic: string): SparkplugTopic | undefined {
  const levels = topic.split('/');
  if (levels[0] !== SPARKPLUG_NAMESPACE) return undefined;
  if (levels.length === 3 && levels[1] === 'STATE' && levels[2]) return { kind: 'state', hostId: levels[2] };
  const [, group, type, edge, device] = levels;
  if (!group || !type || !edge) return undefined;
  if (levels.length === 4 && (NODE_MESSAGE_TYPES as readonly string[]).includes(type)) return { kind: 'node', type: type as NodeMessageType, group, edge };
  if (levels.length === 5 && device && (DEVICE_MESSAGE_TYPES as readonly string[]).includes(type)) return { kind: 'device', type: type as DeviceMessageType, group, edge, device };
  return undefined;
}
