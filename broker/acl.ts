// Who may publish and subscribe to what, by role (docs/broker.md#authorization). A grant is here
// only because the service of that role uses it (test/broker/roles.test.ts); kept by hand until
// the table is derived from the topics each service declares.
import { topicMatches } from '../contracts/topics.js';
import type { Role } from './accounts.js';

const DEVICE_PUBLISH = ['state', 'telemetry', 'status', 'cmd/ack'];

interface Rules {
  publish: string[];
  subscribe: string[];
}

/** The topic filters an account may publish to / subscribe to. */
export function rulesFor(role: Role, username: string): Rules {
  switch (role) {
    case 'device': {
      const base = `lw/${username}`; // username is LINE/DEVICE
      return { publish: DEVICE_PUBLISH.map((k) => `${base}/${k}`), subscribe: [`${base}/cmd`] };
    }
    case 'gateway':
      return { publish: DEVICE_PUBLISH.map((k) => `lw/+/+/${k}`), subscribe: ['lw/+/+/cmd'] };
    case 'rules':
      // Commands (rules/commands.ts) and alerts (rules/engine.ts); whoever sends a command reports
      // its outcome (lw/{line}/{device}/cmd/outcome) for the historian.
      return { publish: ['lw/+/+/cmd', 'lw/+/+/cmd/outcome', 'lw/+/alerts'], subscribe: ['lw/#'] };
    case 'historian':
      // A pure sink (historian/index.ts): it reads everything and publishes nothing.
      return { publish: [], subscribe: ['lw/#'] };
    case 'oee':
      // OEE summaries (oee/service.ts) from the events that make a line's condition and output,
      // and the outcomes of speed and strategy commands (OEE_SUBSCRIPTIONS).
      return { publish: ['lw/+/summary'], subscribe: ['lw/+/+/state', 'lw/+/+/telemetry', 'lw/+/+/status', 'lw/+/+/cmd/outcome'] };
    case 'dashboard':
      // Alert acknowledge and clear (dashboard/server/index.ts); it sends no command.
      return { publish: ['lw/+/alerts'], subscribe: ['lw/#'] };
    case 'admin':
      return { publish: ['#'], subscribe: ['#', '$SYS/#'] };
  }
}

export function mayPublish(rules: Rules, topic: string): boolean {
  if (topic.startsWith('$')) return false; // $SYS is the broker's own
  return rules.publish.some((f) => topicMatches(f, topic));
}

/** True if every topic `requested` can match is also matched by some allowed filter. */
export function maySubscribe(rules: Rules, requested: string): boolean {
  return rules.subscribe.some((allowed) => filterCovers(allowed, requested));
}

/**
 * Whether filter `outer` matches every topic that filter `inner` matches, e.g. lw/# covers
 * lw/+/alerts, lw/+/+/cmd covers lw/A/x/cmd, but lw/A/x/cmd does not cover lw/+/x/cmd.
 */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split('/');
  const i = inner.split('/');
  // A first-level wildcard does not reach $ topics, so it cannot grant them either (MQTT-4.7.2-1).
  if (i[0]?.startsWith('$') && (o[0] === '+' || o[0] === '#')) return false;
  for (let k = 0; k < o.length; k++) {
    const ol = o[k]!;
    if (ol === '#') return true;
    const il = i[k];
    if (il === undefined) return false;
    if (il === '#') return false; // only '#' covers '#'
    if (ol === '+') continue; // covers a literal or '+'
    if (il !== ol) return false;
  }
  return o.length === i.length;
}
