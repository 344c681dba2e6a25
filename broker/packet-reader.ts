// PUBLISH and its acknowledgements read from a client's bytes without mqtt-packet's state machine.
//
// Aedes hands each socket read to mqtt-packet's Parser, which appends it to a BufferList and
// walks four states per packet (header, length, payload, new packet), reading every field
// through the list. That was the broker's largest stage after the write fix: 18–20 % of its busy
// time at 20k msgs/s (bench profile, docs/broker.md#cost-per-message).
//
// Here, while the parser holds nothing of an earlier read, the complete MQTT 3.1.1 PUBLISH,
// PUBACK, PUBREC, PUBREL and PUBCOMP packets at the start of a read are decoded straight from the
// read's Buffer into mqtt-packet's own Packet objects, with the same fields in the same order,
// and emitted as the parser would. The first packet of any other kind, an incomplete one, or one
// that is not well-formed (bad flags, a topic longer than its packet, an ack longer than 2 bytes)
// goes, with the rest of the read, to mqtt-packet's own parse, so its errors and its buffering of
// partial packets stay exactly its own. test/broker/packet-reader.unit.test.ts feeds generated
// streams, cut at random places, to both and compares what they emit.
//
// The reach into Aedes: each client's parser (`client._parser`, a mqtt-packet Parser) gets this
// `parse` as its own property when the client connects (service.ts preConnect). `fastReads`
// refuses a parser whose internals this relies on are not there.
import { createRequire } from 'node:module';
import { aedesFile } from './aedes-package.js';

/** The mqtt-packet Parser internals this file reads (mqtt-packet 9.0.2, parser.js). */
interface ParserInternals {
  parse(buf: Buffer): number;
  emit(event: 'packet', packet: object): boolean;
  settings: { protocolVersion?: number };
  error: Error | null;
  /** mqtt-packet's BufferList of bytes not parsed yet. */
  _list: { length: number; append(buf: Buffer): unknown; slice(): Buffer; consume(bytes: number): unknown };
  _stateCounter: number;
  packet: { length: number };
}

interface WirePacket {
  cmd: string | null;
  retain: boolean;
  qos: number;
  dup: boolean;
  length: number;
  topic: string | null;
  payload: Buffer | null;
  messageId?: number;
}

const requireFromAedes = createRequire(aedesFile('aedes.js'));
const mqttPacketDir = requireFromAedes.resolve('mqtt-packet').replace(/mqtt\.js$/, '');
/** mqtt-packet's Packet class: what its parser emits. */
const Packet = requireFromAedes(`${mqttPacketDir}packet.js`) as new () => WirePacket;
const Parser = requireFromAedes(`${mqttPacketDir}parser.js`) as { prototype: ParserInternals };
const stockParse = Parser.prototype.parse;

const ACK_COMMANDS: readonly (string | undefined)[] = [undefined, undefined, undefined, undefined, 'puback', 'pubrec', 'pubrel', 'pubcomp'];

/**
 * The end of the complete, well-formed fast-path packet at `start`, emitted on `parser`; -1 (and
 * nothing emitted) for anything else.
 */
function readOne(parser: ParserInternals, buf: Buffer, start: number): number {
  const first = buf[start]!;
  const type = first >> 4;
  const isPublish = type === 3;
  if (!isPublish && (type < 4 || type > 7 || (first & 0x0f) !== (type === 6 ? 0x02 : 0))) return -1;
  const qos = (first >> 1) & 0x03;
  if (isPublish && qos === 3) return -1;
  // Remaining length: at most 4 bytes.
  let length = 0;
  let multiplier = 1;
  let offset = start + 1;
  for (let bytes = 0; ; bytes++) {
    if (bytes === 4 || offset >= buf.length) return -1;
    const digit = buf[offset++]!;
    length += (digit & 0x7f) * multiplier;
    multiplier *= 0x80;
    if ((digit & 0x80) === 0) break;
  }
  const end = offset + length;
  if (end > buf.length) return -1;
  if (!isPublish) {
    if (length !== 2) return -1;
    const packet = new Packet();
    packet.cmd = ACK_COMMANDS[type]!;
    // The header's bits as mqtt-packet reads them for every packet: a PUBREL's required 0x02 is QoS 1.
    packet.retain = false;
    packet.qos = qos;
    packet.dup = false;
    packet.length = 2;
    packet.messageId = (buf[offset]! << 8) | buf[offset + 1]!;
    parser.emit('packet', packet);
    return end;
  }
  if (length < 2) return -1;
  const topicLength = (buf[offset]! << 8) | buf[offset + 1]!;
  const topicEnd = offset + 2 + topicLength;
  if (topicEnd + (qos > 0 ? 2 : 0) > end) return -1;
  const packet = new Packet();
  packet.cmd = 'publish';
  packet.retain = (first & 0x01) !== 0;
  packet.qos = qos;
  packet.dup = (first & 0x08) !== 0;
  packet.length = length;
  packet.topic = buf.toString('utf8', offset + 2, topicEnd);
  let payloadStart = topicEnd;
  if (qos > 0) {
    packet.messageId = (buf[topicEnd]! << 8) | buf[topicEnd + 1]!;
    payloadStart += 2;
  }
  packet.payload = buf.subarray(payloadStart, end);
  parser.emit('packet', packet);
  return end;
}

/** The parsers whose read is being decoded right now (a 'packet' listener may call parse again). */
const reading = new Set<ParserInternals>();

/** A client parser's parse: the fast path for a read that starts on a packet boundary, mqtt-packet's own for the rest. */
function parseReads(this: ParserInternals, buf: Buffer): number {
  // A parse from inside a 'packet' listener of this parser: the rest of the current read comes first, so it waits in mqtt-packet's list.
  if (reading.has(this)) {
    this._list.append(buf);
    return this._list.length;
  }
  if (this.error !== null || this._list.length !== 0 || this._stateCounter !== 0 || this.packet.length !== -1 || this.settings.protocolVersion === 5) {
    return stockParse.call(this, buf);
  }
  reading.add(this);
  try {
    return readAll(this, buf);
  } finally {
    reading.delete(this);
  }
}

function readAll(parser: ParserInternals, buf: Buffer): number {
  let offset = 0;
  while (offset < buf.length) {
    const end = readOne(parser, buf, offset);
    if (end === -1) break;
    offset = end;
  }
  const queued = parser._list.length;
  if (offset === buf.length && queued === 0) return 0;
  // The rest of the read, then what a listener handed over meanwhile: mqtt-packet's own parse, in that order.
  const rest = offset === buf.length ? Buffer.alloc(0) : offset === 0 ? buf : buf.subarray(offset);
  if (queued === 0) return stockParse.call(parser, rest);
  const later = parser._list.slice();
  parser._list.consume(queued);
  return stockParse.call(parser, Buffer.concat([rest, later]));
}

/** Gives Aedes's parser of one client the fast path; throws when the parser is not the mqtt-packet Parser this file is written for. */
export function fastReads(parser: unknown): void {
  const internals = parser as Partial<ParserInternals> | undefined;
  if (
    internals === undefined ||
    internals.parse !== stockParse ||
    typeof internals.emit !== 'function' ||
    typeof internals.settings !== 'object' ||
    typeof internals._list?.length !== 'number' ||
    typeof internals._list.append !== 'function' ||
    typeof internals._list.slice !== 'function' ||
    typeof internals._list.consume !== 'function' ||
    typeof internals._stateCounter !== 'number' ||
    typeof internals.packet?.length !== 'number' ||
    !(internals.packet instanceof Packet)
  ) {
    throw new Error("a client's parser is not mqtt-packet 9.0.2's Parser as broker/packet-reader.ts expects (parse, settings, error, _list, _stateCounter, packet): it must be revisited for this Aedes or mqtt-packet");
  }
  internals.parse = parseReads;
}

/** Checks at start, on a parser of its own, that fastReads fits the installed mqtt-packet (so a change fails the start, not the first client). */
export function assertFastReadsFit(): void {
  const mqttPacket = requireFromAedes('mqtt-packet') as { parser(): unknown };
  fastReads(mqttPacket.parser());
}
