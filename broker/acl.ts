// Who may publish and subscribe to what, by role (docs/broker.md#authorization). The broker
// keeps no table of its own: it is given one (RoleTable), derived from the topics each service
// module declares (config/services.ts, roleGrants), so a grant exists only because a service
// uses it (test/broker/roles.test.ts). Only `admin` is the broker's: everything but $SYS publishes.
import { topicMatches } from '../contracts/topics.js';
import { usernameProblem, type Role } from './accounts.js';

/** What an account of a role may publish to and subscribe to: MQTT filters, `{account}` standing for its own username. */
export interface RoleGrants {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/** Grants by role; a role that is not in the table may do nothing. */
export type RoleTable = Readonly<Partial<Record<string, RoleGrants>>>;

/** The placeholder of a per-account filter (lib/service-module.ts). */
export const ACCOUNT_PLACEHOLDER = '{account}';
/** A Sparkplug edge node account GROUP/EDGE: its group and edge node ids, apart (spBv1.0/{group}/NBIRTH/{edge}). */
export const GROUP_PLACEHOLDER = '{group}';
export const EDGE_PLACEHOLDER = '{edge}';

export interface Rules {
  publish: string[];
  subscribe: string[];
}

const ADMIN: RoleGrants = { publish: ['#'], subscribe: ['#', '$SYS/#'] };
const NOTHING: RoleGrants = { publish: [], subscribe: [] };

/** The topic filters an account may publish to / subscribe to. */
export function rulesFor(table: RoleTable, role: Role, username: string): Rules {
  // A valid username holds no wildcard, nor a '/' beyond a device's LINE/DEVICE (accounts.ts), so
  // substituting it cannot widen a filter; a hand-edited devices file may hold one that is not.
  const grants = usernameProblem(username, role) ? NOTHING : role === 'admin' ? ADMIN : (table[role] ?? NOTHING);
  // {group} and {edge} are the two parts of a GROUP/EDGE username (sparkplug-edge); a filter that
  // names them is granted to no other account, whose username has no such parts.
  const [group, edge] = username.split('/');
  const twoParts = group !== undefined && edge !== undefined;
  const own = (filter: string): string => {
    const substituted = filter.split(ACCOUNT_PLACEHOLDER).join(username);
    if (!substituted.includes(GROUP_PLACEHOLDER) && !substituted.includes(EDGE_PLACEHOLDER)) return substituted;
    return twoParts ? substituted.split(GROUP_PLACEHOLDER).join(group).split(EDGE_PLACEHOLDER).join(edge) : '';
  };
  return { publish: grants.publish.map(own).filter(Boolean), subscribe: grants.subscribe.map(own).filter(Boolean) };
}

/** Roles that may do nothing under `table` (their accounts would connect and be refused every publish). */
export function rolesWithoutGrants(table: RoleTable, roles: readonly Role[]): Role[] {
  return roles.filter((role) => role !== 'admin' && !table[role]);
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
