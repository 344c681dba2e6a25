// Where a client connects from, for logs and the login guard.
import type { Client } from 'aedes';
import { guardLabelOf } from './packet-guard.js';

/** address:port of the client's socket (for WebSocket clients too: the guard keeps what the listener saw). */
export function remoteOf(client: Client): string {
  return guardLabelOf(client.conn) ?? '?:?';
}

/** The address part of remoteOf's address:port. */
export function addressOf(remote: string): string {
  return remote.slice(0, remote.lastIndexOf(':'));
}
