// Just enough MQTT 3.1.1 on the wire for the load generator and the counting subscriber: a
// client library would be the bottleneck at 80k msgs/s, so the bench writes packets itself.

/** The fixed header's Remaining Length: 7 bits a byte, high bit set while more follow (MQTT 3.1.1 §2.2.3). */
export function encodeRemainingLength(remaining: number): number[] {
  const len: number[] = [];
  let n = remaining;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    len.push(byte);
  } while (n > 0);
  return len;
}

function withLength(first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first, ...encodeRemainingLength(body.length)]), body]);
}

function str(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

export interface ConnectOptions {
  username?: string;
  password?: string;
  /** Clean session (default true). */
  clean?: boolean;
  keepaliveS?: number;
}

export function encodeConnect(clientId: string, { username, password, clean = true, keepaliveS = 60 }: ConnectOptions = {}): Buffer {
  let flags = clean ? 0x02 : 0;
  if (username !== undefined) flags |= 0x80;
  if (password !== undefined) flags |= 0x40;
  const parts = [str('MQTT'), Buffer.from([4, flags, keepaliveS >> 8, keepaliveS & 0xff]), str(clientId)];
  if (username !== undefined) parts.push(str(username));
  if (password !== undefined) parts.push(str(password));
  return withLength(0x10, Buffer.concat(parts));
}

export function encodeSubscribe(filter: string, qos: 0 | 1 = 0): Buffer {
  return withLength(0x82, Buffer.concat([Buffer.from([0, 1]), str(filter), Buffer.from([qos])]));
}

export function encodePublish(topic: string, payload: Buffer, qos: 0 | 1 | 2 = 0, messageId = 0): Buffer {
  const id = qos > 0 ? Buffer.from([messageId >> 8, messageId & 0xff]) : Buffer.alloc(0);
  return withLength(0x30 | (qos << 1), Buffer.concat([str(topic), id, payload]));
}

export function encodePuback(messageId: number): Buffer {
  return Buffer.from([0x40, 2, messageId >> 8, messageId & 0xff]);
}

export interface WirePacket {
  type: number; // 1..14
  flags: number;
  body: Buffer;
}

/** Splits a byte stream into MQTT packets. */
export class PacketReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer, onPacket: (p: WirePacket) => void): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let i = 0;
    for (;;) {
      if (buf.length - i < 2) break;
      let len = 0;
      let mul = 1;
      let j = i + 1;
      let complete = false;
      for (let k = 0; k < 4 && j < buf.length; k++) {
        const byte = buf[j++]!;
        len += (byte & 0x7f) * mul;
        mul *= 128;
        if (!(byte & 0x80)) {
          complete = true;
          break;
        }
      }
      if (!complete || buf.length - j < len) break;
      const first = buf[i]!;
      onPacket({ type: first >> 4, flags: first & 0x0f, body: buf.subarray(j, j + len) });
      i = j + len;
    }
    buf = buf.subarray(i);
    this.pending = buf.length > 0 ? Buffer.from(buf) : Buffer.alloc(0);
  }
}

/** Topic, message id and payload of a PUBLISH body. */
export function decodePublish(p: WirePacket): { topic: string; messageId: number; payload: Buffer } {
  const topicLen = (p.body[0]! << 8) | p.body[1]!;
  const topic = p.body.toString('utf8', 2, 2 + topicLen);
  const qos = (p.flags >> 1) & 3;
  let at = 2 + topicLen;
  let messageId = 0;
  if (qos > 0) {
    messageId = (p.body[at]! << 8) | p.body[at + 1]!;
    at += 2;
  }
  return { topic, messageId, payload: p.body.subarray(at) };
}
