// Which MQTT client ids an account may use (docs/broker.md#client-ids): its username itself,
// or its username, ':' and any suffix (A/conv-1, A/conv-1:sim-3f9a, hist-1:4711). ':' appears
// in no username (device ids and service usernames exclude it), so the part of a client id
// before its first ':' names the one account that may use it: no account can take another's
// id, however the usernames are prefixes of each other (A/conv-1 and A/conv-1-x).

export const CLIENT_ID_SEPARATOR = ':';

/** The client id for `username`, with an optional suffix (e.g. a process id, for several connections). */
export function clientIdFor(username: string, suffix?: string): string {
  return suffix === undefined ? username : `${username}${CLIENT_ID_SEPARATOR}${suffix}`;
}

/** Whether the account `username` may connect with `clientId`. */
export function isClientIdOf(username: string, clientId: string): boolean {
  return clientId === username || (clientId.startsWith(username) && clientId[username.length] === CLIENT_ID_SEPARATOR);
}
