// MQTT 5 clients, told apart from broken bytes. Aedes 1.2.0 speaks MQTT 3.1 and 3.1.1 only: to a
// CONNECT of protocol level 5 it answers CONNACK 0x01 (unacceptable protocol version, as
// MQTT-3.1.2-2 asks of a 3.1.1 server) and closes, and reports that as a connection error like
// any parse failure, so it was counted as malformed_packet and logged at debug. Here the
// `preConnect` hook (public API; it runs before Aedes's version check and gets the packet) notes
// the level of each CONNECT above 4, and the connection error that follows is counted as
// unsupported_protocol and logged at warn (rate-limited) with what to do.
//
// That Aedes refuses those levels, and how, is an internal of lib/handlers/connect.js, checked at
// start (assertRefusesNewerProtocols): if an upgrade speaks MQTT 5, this file must be revisited.
import { readFileSync } from 'node:fs';
import type { Client, ConnectPacket } from 'aedes';
import type { LogLimiter } from '../lib/log-limit.js';
import { aedesFile } from './aedes-package.js';
import { remoteOf } from './client-remote.js';
import type { BrokerCounters } from './stats.js';

/** The highest MQTT protocol level Aedes 1.2.0 accepts (4 = MQTT 3.1.1). */
export const HIGHEST_PROTOCOL_LEVEL = 4;

interface Attempt {
  readonly protocolVersion: number;
  readonly clientId: string;
  readonly username: string | undefined;
}

/** Aedes 1.2.0's connect handler answers return code 1 to any protocol level above 4. */
export function assertRefusesNewerProtocols(): void {
  const file = aedesFile('lib/handlers/connect.js');
  const source = readFileSync(file, 'utf8');
  if (!source.includes(`packet.protocolVersion > ${HIGHEST_PROTOCOL_LEVEL}`) || !source.includes("'unacceptable protocol version'") || !source.includes('error.errorCode = returnCode')) {
    throw new Error(`aedes changed (${file} no longer refuses protocol levels above ${HIGHEST_PROTOCOL_LEVEL} with return code 1): broker/protocol-version.ts must be revisited for the new version`);
  }
}

export class ProtocolVersions {
  private readonly newer = new WeakMap<Client, Attempt>();

  constructor(
    private readonly counters: BrokerCounters,
    private readonly limitedLog: LogLimiter,
  ) {
    assertRefusesNewerProtocols();
  }

  /** Called from preConnect with every CONNECT: remembers one whose level Aedes is about to refuse. */
  noteConnect(client: Client, packet: ConnectPacket): void {
    const protocolVersion = packet.protocolVersion ?? HIGHEST_PROTOCOL_LEVEL;
    if (protocolVersion > HIGHEST_PROTOCOL_LEVEL) {
      this.newer.set(client, { protocolVersion, clientId: packet.clientId, username: packet.username });
    }
  }

  /** Called with each connection error before CONNACK: true (counted, logged) when it was Aedes refusing a newer protocol. */
  refused(client: Client, err: Error & { errorCode?: number }): boolean {
    const attempt = this.newer.get(client);
    if (!attempt || err.errorCode !== 1) return false;
    this.newer.delete(client);
    this.counters.reject('unsupported_protocol');
    this.limitedLog.write(
      'warn',
      'unsupported_protocol',
      { ...attempt, remote: remoteOf(client) },
      `refused an MQTT ${attempt.protocolVersion === 5 ? '5' : `protocol level ${attempt.protocolVersion}`} client with CONNACK 0x01 (unacceptable protocol version): this broker speaks MQTT 3.1.1; connect the client with MQTT 3.1.1 (mosquitto_pub -V mqttv311, MQTT.js protocolVersion: 4), or run an MQTT 5 broker such as Mosquitto and point the services at it (docs/broker.md#mqtt-5)`,
    );
    return true;
  }
}
