// broker/packet-writer.ts: its MQTT 3.1.1 encoding of PUBLISH and the acknowledgements is
// mqtt-packet's own, byte for byte, over generated packets; once installed, a packet to a
// connection the broker batches (write-batching.ts) is one chunk instead of mqtt-packet's one
// chunk per field, and every other stream or packet still gets mqtt-packet's own writer.
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { aedesFile } from '../../broker/aedes-package.js';
import { encodePacket, INLINE_PAYLOAD_BYTES, installPacketWriter, SAMPLE_PACKETS, type WirePacket } from '../../broker/packet-writer.js';
import { batchWrites } from '../../broker/write-batching.js';
import { chance, pick, random, type Rand } from '../harness/random.js';

interface MqttPacket {
  generate(packet: WirePacket): Buffer;
  writeToStream(packet: WirePacket, stream: Duplex, opts?: unknown): boolean;
  parser(): { on(event: 'packet', listener: (packet: Record<string, unknown>) => void): void; parse(bytes: Buffer): number };
}
// The instance Aedes uses, as broker/packet-writer.ts resolves it.
const mqttPacket = createRequire(aedesFile('aedes.js'))('mqtt-packet') as MqttPacket;

function randomPacket(rand: Rand): WirePacket {
  const cmd = pick(rand, ['publish', 'publish', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp'] as const);
  const messageId = pick(rand, [0, 1, 127, 128, 255, 256, 65_535, Math.floor(rand() * 65_536)]);
  if (cmd !== 'publish') return { cmd, messageId };
  const qos = pick(rand, [0, 1, 2]);
  const topic = pick(rand, ['', 'a', 'lw/A/conv-1/telemetry', 'lw/Ä/ü/€', 'x'.repeat(Math.floor(rand() * 400))]);
  // Sizes around each remaining-length boundary and the inline limit.
  const size = pick(rand, [0, 1, 64, 120, 127, 128, 16_000, 16_383, 16_384, INLINE_PAYLOAD_BYTES, INLINE_PAYLOAD_BYTES + 1, Math.floor(rand() * 70_000)]);
  const payload = Buffer.alloc(size, Math.floor(rand() * 256));
  return { cmd, topic, payload, qos, dup: chance(rand, 0.3), retain: chance(rand, 0.3), ...(qos > 0 ? { messageId } : {}) };
}

/** A stream recording the chunks that reach its transport. */
function recordingStream(): { stream: Duplex; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
    writev(entries, callback) {
      for (const entry of entries) chunks.push(entry.chunk as Buffer);
      callback();
    },
  });
  return { stream, chunks };
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

describe('encodePacket', () => {
  it("gives mqtt-packet's bytes for 3000 generated PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP packets", () => {
    const rand = random(0x9ac4e7);
    let encoded = 0;
    for (let i = 0; i < 3000; i++) {
      const packet = randomPacket(rand);
      const chunks = encodePacket(packet);
      expect(chunks, `case ${i}: ${packet.cmd}`).toBeDefined();
      const bytes = Buffer.concat(chunks!);
      expect(bytes.equals(mqttPacket.generate(packet)), `case ${i}: ${packet.cmd} qos ${String(packet.qos)}`).toBe(true);
      if (packet.cmd === 'publish') expect(chunks!.length).toBe((packet.payload as Buffer).length > INLINE_PAYLOAD_BYTES ? 2 : 1);
      encoded++;
    }
    expect(encoded).toBe(3000);
  });

  it('decodes back, through mqtt-packet’s parser, to the packet it was given', () => {
    const packet = { cmd: 'publish', topic: 'lw/A/st-1/state', payload: Buffer.from('{"state":"RUNNING"}'), qos: 1, messageId: 4242, dup: true, retain: false };
    const parser = mqttPacket.parser();
    const parsed: Record<string, unknown>[] = [];
    parser.on('packet', (p) => parsed.push(p));
    parser.parse(Buffer.concat(encodePacket(packet)!));
    expect(parsed).toHaveLength(1);
    expect(parsed[0]).toMatchObject({ cmd: 'publish', topic: packet.topic, qos: 1, messageId: 4242, dup: true, retain: false });
    expect((parsed[0]!.payload as Buffer).equals(packet.payload)).toBe(true);
  });

  it('leaves to mqtt-packet every packet it does not encode exactly as mqtt-packet would', () => {
    const payload = Buffer.from('x');
    const refused: WirePacket[] = [
      { cmd: 'subscribe', messageId: 1 },
      { cmd: 'publish', topic: Buffer.from('t'), payload, qos: 0 },
      { cmd: 'publish', topic: 't', payload: 'a string', qos: 0 },
      { cmd: 'publish', topic: 't', payload, qos: 3, messageId: 1 },
      { cmd: 'publish', topic: 't', payload, qos: 1 },
      { cmd: 'publish', topic: 't', payload, qos: 1, messageId: 70_000 },
      { cmd: 'puback', messageId: 1.5 },
      { cmd: 'puback' },
      { cmd: 'pubrel', messageId: 1, dup: true },
    ];
    for (const packet of refused) expect(encodePacket(packet), JSON.stringify(packet)).toBeUndefined();
  });
});

describe('installPacketWriter', () => {
  const packet = SAMPLE_PACKETS[0]!;

  it("without it, mqtt-packet writes a PUBLISH as six chunks (one per field)", async () => {
    const { stream, chunks } = recordingStream();
    batchWrites(stream);
    const original = mqttPacket.writeToStream;
    try {
      // The function as it is before any install in this file's process (this test runs first).
      expect(original.name).toBe('generate');
      original(packet, stream);
      await nextTurn();
      expect(chunks).toHaveLength(6);
    } finally {
      stream.destroy();
    }
  });

  it('with it, a PUBLISH to a batched connection is one chunk with the same bytes; other streams and packets keep mqtt-packet', async () => {
    installPacketWriter();
    installPacketWriter(); // idempotent
    expect(mqttPacket.writeToStream.name).toBe('writeToStream');
    const batched = recordingStream();
    batchWrites(batched.stream);
    expect(mqttPacket.writeToStream(packet, batched.stream)).toBe(true);
    expect(mqttPacket.writeToStream({ cmd: 'puback', messageId: 9 }, batched.stream)).toBe(true);
    await nextTurn();
    expect(batched.chunks).toHaveLength(2);
    expect(Buffer.concat(batched.chunks).equals(Buffer.concat([mqttPacket.generate(packet), mqttPacket.generate({ cmd: 'puback', messageId: 9 })]))).toBe(true);

    // A stream the broker does not batch (an MQTT.js client's, say) and a packet the encoder leaves: mqtt-packet's chunks.
    const plain = recordingStream();
    mqttPacket.writeToStream(packet, plain.stream);
    const bufferTopic = { ...packet, topic: Buffer.from(packet.topic as string) };
    mqttPacket.writeToStream(bufferTopic, batched.stream);
    await nextTurn();
    expect(plain.chunks).toHaveLength(6);
    expect(batched.chunks).toHaveLength(2 + 6);
    expect(Buffer.concat(plain.chunks).equals(mqttPacket.generate(packet))).toBe(true);
    batched.stream.destroy();
    plain.stream.destroy();
  });
});
