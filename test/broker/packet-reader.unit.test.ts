// broker/packet-reader.ts against mqtt-packet's own parser: generated streams of packets — the
// fast path's kinds, other kinds and broken ones — cut into reads at random places, fed to a stock
// parser and to one with the fast path. Both must emit the same packets (fields, order, payload
// bytes, Packet class), the same errors, and return the same from each parse().
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { aedesFile } from '../../broker/aedes-package.js';
import { assertFastReadsFit, fastReads } from '../../broker/packet-reader.js';
import { chance, pick, random, type Rand } from '../harness/random.js';

interface TestParser {
  parse(buf: Buffer): number;
  on(event: 'packet' | 'error', listener: (value: unknown) => void): void;
  settings: { protocolVersion?: number };
}
interface MqttPacket {
  parser(opts?: object): TestParser;
  generate(packet: object): Buffer;
}
const mqttPacket = createRequire(aedesFile('aedes.js'))('mqtt-packet') as MqttPacket;

/** One packet's bytes: mostly the fast path's kinds, some others, some broken. */
function packetBytes(rand: Rand): Buffer {
  const kind = pick(rand, ['publish', 'publish', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'pingreq', 'subscribe', 'broken'] as const);
  const messageId = Math.floor(rand() * 65_536);
  switch (kind) {
    case 'publish': {
      const qos = pick(rand, [0, 1, 2]);
      const topic = pick(rand, ['lw/A/conv-1/telemetry', 'a', '', 'lw/Ä/€/x', 'x'.repeat(Math.floor(rand() * 300))]);
      const size = pick(rand, [0, 1, 64, 64, 64, 127, 128, 300, 16_383, 16_384, Math.floor(rand() * 3000)]);
      return mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.alloc(size, Math.floor(rand() * 256)), qos, dup: chance(rand, 0.2), retain: chance(rand, 0.2), ...(qos > 0 ? { messageId } : {}) });
    }
    case 'pingreq':
      return mqttPacket.generate({ cmd: 'pingreq' });
    case 'subscribe':
      return mqttPacket.generate({ cmd: 'subscribe', messageId: messageId || 1, subscriptions: [{ topic: 'lw/#', qos: 1 }] });
    case 'broken':
      return pick(rand, [
        Buffer.from([0x36, 0x04, 0x00, 0x01, 0x61, 0x00]), // PUBLISH with both QoS bits set
        Buffer.from([0x42, 0x02, 0x00, 0x01]), // PUBACK with reserved flag bits
        Buffer.from([0x40, 0x03, 0x00, 0x01, 0x00]), // PUBACK one byte too long
        Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61]), // PUBLISH whose topic runs past its packet
        Buffer.from([0x32, 0x03, 0x00, 0x01, 0x61]), // QoS 1 PUBLISH without room for its id
        Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]), // remaining length of five bytes
        Buffer.from([0x00, 0x00]), // reserved packet type 0
        Buffer.from([0x40, 0x82, 0x00, 0x00, 0x07]), // PUBACK with a non-minimal remaining length (2 in two bytes)
        Buffer.from([0x40, 0x00]), // PUBACK of length 0
        Buffer.from([0x30, 0x82, 0x80, 0x00, 0x00]), // PUBLISH with a non-minimal remaining length (2 in three bytes), empty topic
      ]);
    default:
      return mqttPacket.generate({ cmd: kind, messageId });
  }
}

type Spied = TestParser & { _list: { append(buf: Buffer): unknown } };

/** Counts the reads that reach mqtt-packet's own BufferList (the stock parse appends every read it takes). */
function spyOnAppends(parser: Spied): { count: number } {
  const seen = { count: 0 };
  const append = parser._list.append.bind(parser._list);
  parser._list.append = (buf: Buffer) => {
    seen.count++;
    return append(buf);
  };
  return seen;
}

/** What a parser did with the reads: each parse()'s return, then every packet and error in order; and how many reads the fast path took whole. */
function run(reads: Buffer[], fast: boolean): { returns: number[]; events: unknown[]; takenWhole: number } {
  const parser = mqttPacket.parser() as Spied;
  if (fast) fastReads(parser);
  const events: unknown[] = [];
  // The keys in their order too: toEqual would not see a field set in another order, or one left undefined.
  parser.on('packet', (packet) => events.push({ keys: Object.keys(packet as object), packet: { ...(packet as object) }, class: (packet as object).constructor.name }));
  parser.on('error', (err) => events.push({ error: (err as Error).message }));
  let takenWhole = 0;
  const returns = reads.map((read) => {
    // The stock parser builds a new BufferList after an error: spy on the one in place now.
    const appends = spyOnAppends(parser);
    const left = parser.parse(read);
    if (appends.count === 0) takenWhole++;
    return left;
  });
  return { returns, events, takenWhole };
}

/** `bytes` cut at random places: reads of 1 byte up to the whole. */
function cut(rand: Rand, bytes: Buffer): Buffer[] {
  const reads: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = chance(rand, 0.4) ? bytes.length - at : 1 + Math.floor(rand() * Math.min(bytes.length - at, pick(rand, [7, 64, 4096, 70_000])));
    // A copy, as a socket read is its own Buffer.
    reads.push(Buffer.from(bytes.subarray(at, at + size)));
    at += size;
  }
  return reads;
}

describe('broker/packet-reader', () => {
  it("emits what mqtt-packet's parser emits for 300 generated streams, cut into reads at random", () => {
    const rand = random(0x7eade7);
    let packets = 0;
    let fastReadsSeen = 0;
    for (let i = 0; i < 300; i++) {
      const stream = Buffer.concat(Array.from({ length: 1 + Math.floor(rand() * 40) }, () => packetBytes(rand)));
      const reads = cut(rand, stream);
      const stock = run(reads, false);
      const fast = run(reads, true);
      expect({ returns: fast.returns, events: fast.events }, `stream ${i}`).toEqual({ returns: stock.returns, events: stock.events });
      packets += stock.events.length;
      fastReadsSeen += fast.takenWhole;
    }
    // The generator reaches both paths: many packets, and many reads the fast path took whole.
    expect(packets).toBeGreaterThan(2500);
    expect(fastReadsSeen).toBeGreaterThan(100);
  });

  it('decodes a read of whole PUBLISH and PUBACK packets without the stock parser', () => {
    const parser = mqttPacket.parser() as Spied;
    fastReads(parser);
    const appends = spyOnAppends(parser);
    const got: unknown[] = [];
    parser.on('packet', (packet) => got.push(packet));
    const read = Buffer.concat([
      mqttPacket.generate({ cmd: 'publish', topic: 'lw/A/st-1/state', payload: Buffer.from('{"state":"RUNNING"}'), qos: 1, messageId: 77 }),
      mqttPacket.generate({ cmd: 'puback', messageId: 12 }),
    ]);
    expect(parser.parse(read)).toBe(0);
    expect(appends.count).toBe(0); // nothing went through mqtt-packet's BufferList
    expect(got).toMatchObject([
      { cmd: 'publish', topic: 'lw/A/st-1/state', qos: 1, messageId: 77, retain: false, dup: false },
      { cmd: 'puback', messageId: 12 },
    ]);
    // A PINGREQ next: the stock parser takes it (and what follows it).
    const ping = mqttPacket.generate({ cmd: 'pingreq' });
    expect(parser.parse(ping)).toBe(0);
    expect(appends.count).toBe(1);
  });

  it('refuses a parser that is not the mqtt-packet Parser it is written for', () => {
    expect(() => fastReads({ parse: () => 0 })).toThrow(/must be revisited/);
    expect(() => fastReads(undefined)).toThrow(/must be revisited/);
  });

  it('a parse called from a packet listener waits for the rest of the current read, in order', () => {
    const reads = [
      Buffer.concat([mqttPacket.generate({ cmd: 'puback', messageId: 1 }), mqttPacket.generate({ cmd: 'puback', messageId: 2 })]),
      Buffer.concat([mqttPacket.generate({ cmd: 'puback', messageId: 3 }), mqttPacket.generate({ cmd: 'pingreq' })]),
    ];
    const parser = mqttPacket.parser();
    fastReads(parser);
    const ids: unknown[] = [];
    let nested = false;
    parser.on('packet', (packet) => {
      const { cmd, messageId } = packet as { cmd: string; messageId?: number };
      ids.push(messageId ?? cmd);
      if (!nested) {
        nested = true;
        parser.parse(reads[1]!); // as Aedes's nextBatch could, from a synchronously handled packet
      }
    });
    parser.parse(reads[0]!);
    expect(ids).toEqual([1, 2, 3, 'pingreq']);
  });

  it('the start-up check passes on the installed mqtt-packet', () => {
    expect(() => assertFastReadsFit()).not.toThrow();
  });
});
