// PUBLISH and its acknowledgements written to a client as one buffer each.
//
// Aedes writes every packet with mqtt-packet's `writeToStream`, which hands the stream each field
// as its own chunk: a PUBLISH is six `write` calls (header, remaining length, topic length, the
// topic as a string, packet id, payload), a PUBACK three. Each chunk is a buffered-write entry in
// the socket's Writable, the topic string is converted on the way, and the turn's batch
// (write-batching.ts) goes to the kernel as one writev of six chunks per message. Packet
// generation and socket writes were the broker's largest stage: 25.8 % of its busy time at 20k
// msgs/s (bench profile, docs/broker.md#cost-per-message).
//
// Here the MQTT 3.1.1 encodings of PUBLISH (payload up to INLINE_PAYLOAD_BYTES copied in; a larger
// one follows as a second chunk, by reference), PUBACK, PUBREC, PUBREL and PUBCOMP are built in one
// buffer and written with one `write`, on the broker's own connections (those write-batching.ts
// batches). Any other packet, stream or shape — MQTT 5 options, a Buffer topic, a string payload, an
// out-of-range id or QoS — goes to mqtt-packet's own function, so its errors stay exactly its own.
//
// The reach into the dependency: Aedes 1.2.0's lib/write.js reads `mqtt.writeToStream` off
// mqtt-packet's module object on every write, and that property is replaced here. `installPacketWriter`
// fails loudly if Aedes no longer calls it that way, if the property is not mqtt-packet's own
// function, or if the encoder's bytes differ from mqtt-packet's `generate` for a set of packets.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';
import { aedesFile } from './aedes-package.js';
import { isBatched } from './write-batching.js';

/** A payload up to this size is copied into the packet's buffer; a larger one is written after it as its own chunk. */
export const INLINE_PAYLOAD_BYTES = 2048;

/** The fields of the packets encoded here, as Aedes and mqtt-packet name them. */
export interface WirePacket {
  cmd: string;
  topic?: unknown;
  payload?: unknown;
  qos?: unknown;
  dup?: unknown;
  retain?: unknown;
  messageId?: unknown;
}

type WriteToStream = (packet: WirePacket, stream: Duplex, opts?: unknown) => boolean;
interface MqttPacketModule {
  writeToStream: WriteToStream;
  generate: (packet: WirePacket) => Buffer;
}

const PACKET_TYPE: Record<string, number> = { publish: 3, puback: 4, pubrec: 5, pubrel: 6, pubcomp: 7 };
/** MQTT's largest remaining length (four length bytes). */
const MAX_REMAINING_LENGTH = 268_435_455;

function isPacketId(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

function remainingLengthBytes(length: number): number {
  return length < 0x80 ? 1 : length < 0x4000 ? 2 : length < 0x20_0000 ? 3 : 4;
}

/**
 * The packet as MQTT 3.1.1 bytes, in one or two chunks (header+topic+id[+payload], [payload]),
 * or undefined when the packet is not one this encoder takes (mqtt-packet writes it then).
 */
export function encodePacket(packet: WirePacket): Buffer[] | undefined {
  if (packet.cmd === 'publish') return encodePublish(packet);
  const type = PACKET_TYPE[packet.cmd];
  if (type === undefined || !isPacketId(packet.messageId)) return undefined;
  // mqtt-packet 9.0.2 throws on a PUBREL with dup set (it indexes its header table with the mask): left to it.
  if (packet.cmd === 'pubrel' && packet.dup) return undefined;
  const bytes = Buffer.allocUnsafe(4);
  bytes[0] = (type << 4) | (packet.cmd === 'pubrel' ? 0x02 : 0);
  bytes[1] = 2;
  bytes[2] = packet.messageId >> 8;
  bytes[3] = packet.messageId & 0xff;
  return [bytes];
}

function encodePublish(packet: WirePacket): Buffer[] | undefined {
  const { topic, payload, messageId } = packet;
  const qos = packet.qos === undefined || packet.qos === null || packet.qos === false ? 0 : packet.qos;
  if (typeof topic !== 'string' || !Buffer.isBuffer(payload) || (qos !== 0 && qos !== 1 && qos !== 2)) return undefined;
  if (qos > 0 && !isPacketId(messageId)) return undefined;
  const topicBytes = Buffer.byteLength(topic);
  if (topicBytes > 0xffff) return undefined;
  const idBytes = qos > 0 ? 2 : 0;
  const remaining = 2 + topicBytes + idBytes + payload.length;
  if (remaining > MAX_REMAINING_LENGTH) return undefined;
  const inline = payload.length <= INLINE_PAYLOAD_BYTES;
  const headerSize = 1 + remainingLengthBytes(remaining) + 2 + topicBytes + idBytes;
  const bytes = Buffer.allocUnsafe(inline ? headerSize + payload.length : headerSize);
  bytes[0] = 0x30 | (packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 0x01 : 0);
  let offset = 1;
  let length = remaining;
  do {
    let digit = length % 0x80;
    length = Math.floor(length / 0x80);
    if (length > 0) digit |= 0x80;
    bytes[offset++] = digit;
  } while (length > 0);
  bytes[offset++] = topicBytes >> 8;
  bytes[offset++] = topicBytes & 0xff;
  offset += bytes.write(topic, offset, 'utf8');
  if (qos > 0) {
    const id = messageId as number;
    bytes[offset++] = id >> 8;
    bytes[offset++] = id & 0xff;
  }
  if (!inline) return [bytes, payload];
  payload.copy(bytes, offset);
  return [bytes];
}

let original: WriteToStream | undefined;

/** mqtt-packet's writeToStream for the broker's connections: one write per packet where encodePacket takes it. */
function writeToStream(packet: WirePacket, stream: Duplex, opts?: unknown): boolean {
  if (opts === undefined && isBatched(stream)) {
    const chunks = encodePacket(packet);
    if (chunks !== undefined) {
      stream.cork(); // write-batching.ts: held until the end of this event-loop turn
      return chunks.length === 1 ? stream.write(chunks[0]) : (stream.write(chunks[0]), stream.write(chunks[1]));
    }
  }
  return (original as WriteToStream)(packet, stream, opts);
}

/** Packets whose encoding is checked against mqtt-packet's own at install (and in test/broker/packet-writer.unit.test.ts). */
export const SAMPLE_PACKETS: readonly WirePacket[] = [
  { cmd: 'publish', topic: 'lw/A/conv-1/telemetry', payload: Buffer.from('{"v":1}'), qos: 1, messageId: 513, dup: false, retain: false },
  { cmd: 'publish', topic: 'lw/Ä/x', payload: Buffer.alloc(300, 7), qos: 2, messageId: 65535, dup: true, retain: true },
  { cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 0, retain: true },
  { cmd: 'publish', topic: 'big', payload: Buffer.alloc(INLINE_PAYLOAD_BYTES + 20_000, 1), qos: 1, messageId: 1 },
  { cmd: 'puback', messageId: 1 },
  { cmd: 'pubrec', messageId: 300 },
  { cmd: 'pubrel', messageId: 65535 },
  { cmd: 'pubcomp', messageId: 0 },
];

/** Replaces mqtt-packet's writeToStream for Aedes (idempotent); throws when the reach no longer fits the installed versions. */
export function installPacketWriter(): void {
  const mqttPacket = createRequire(aedesFile('aedes.js'))('mqtt-packet') as MqttPacketModule;
  if (mqttPacket.writeToStream === writeToStream) return;
  const writeJs = aedesFile('lib/write.js');
  if (!readFileSync(writeJs, 'utf8').includes('mqtt.writeToStream(packet, client.conn)')) {
    throw new Error(`${writeJs} no longer writes with mqtt.writeToStream(packet, client.conn): broker/packet-writer.ts must be revisited for this Aedes`);
  }
  if (typeof mqttPacket.writeToStream !== 'function' || mqttPacket.writeToStream.name !== 'generate' || typeof mqttPacket.generate !== 'function') {
    throw new Error("mqtt-packet's writeToStream is not its own generate function (replaced by another module, or a new mqtt-packet): broker/packet-writer.ts must be revisited");
  }
  for (const packet of SAMPLE_PACKETS) {
    const ours = Buffer.concat(encodePacket(packet) ?? []);
    const theirs = mqttPacket.generate(packet);
    if (!ours.equals(theirs)) throw new Error(`broker/packet-writer.ts encodes a ${packet.cmd} differently from the installed mqtt-packet (${ours.toString('hex').slice(0, 40)}… vs ${theirs.toString('hex').slice(0, 40)}…): revisit it for this mqtt-packet`);
  }
  original = mqttPacket.writeToStream;
  mqttPacket.writeToStream = writeToStream;
}
