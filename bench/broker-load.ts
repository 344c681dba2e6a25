// Child process for bench/broker.ts: the load generator (100 device connections publishing QoS 1
// telemetry at a fixed offered rate) and the counting TCP subscriber, in their own process so
// the broker's CPU is measured alone. Talks to the parent over IPC.
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { BENCH_PASSWORD, Receiver, deviceName, telemetryPayload } from './broker-receiver.js';
import { PacketReader, decodePublish, encodeConnect, encodePuback, encodeSubscribe } from './mqtt-wire.js';

interface Publisher {
  socket: Socket;
  header: Buffer; // fixed header + topic of this device's telemetry PUBLISH (QoS 1)
  seq: number;
  messageId: number;
  acked: number;
}

const receiver = new Receiver();
let publishers: Publisher[] = [];
let subscriber: Socket | undefined;
let idle: Socket[] = [];

function open(port: number, clientId: string, username: string, keepaliveS = 60, clean = true): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.write(encodeConnect(clientId, { username, password: BENCH_PASSWORD, keepaliveS, clean }));
    socket.once('data', (d: Buffer) => {
      if (d[0] !== 0x20 || d[3] !== 0) return reject(new Error(`${clientId}: CONNACK ${d[3]}`));
      socket.off('error', reject);
      socket.on('error', () => undefined);
      if (d.length > 4) socket.unshift(d.subarray(4));
      resolve(socket);
    });
  });
}

/**
 * The publishers on `port`; the subscriber (if any) on `subscriberPort` (another node of a cluster), by default the same, with a
 * persistent session (clean=false, as the historian's) when `persistentSubscriber`.
 */
async function connectAll(port: number, devices: number, withSubscriber: boolean, subscriberPort = port, persistentSubscriber = false): Promise<void> {
  if (withSubscriber) {
    subscriber = await open(subscriberPort, 'bench-sub:subscriber', 'bench-sub', 60, !persistentSubscriber);
    const reader = new PacketReader();
    subscriber.on('data', (chunk: Buffer) => {
      const acks: Buffer[] = [];
      reader.push(chunk, (p) => {
        if (p.type !== 3) return;
        const { topic, messageId, payload } = decodePublish(p);
        receiver.onMessage(topic, payload);
        if (messageId) acks.push(encodePuback(messageId));
      });
      if (acks.length > 0) subscriber!.write(Buffer.concat(acks));
    });
    subscriber.write(encodeSubscribe('lw/+/+/telemetry', 1));
    await new Promise((r) => setTimeout(r, 200));
  }
  publishers = await Promise.all(
    Array.from({ length: devices }, async (_, i) => {
      const socket = await open(port, `${deviceName(i)}:bench-dev-${i}`, deviceName(i));
      const topic = Buffer.from(`lw/${deviceName(i)}/telemetry`);
      const header = Buffer.concat([Buffer.from([0x32, 2 + topic.length + 2 + 64, 0, topic.length]), topic]);
      const pub: Publisher = { socket, header, seq: 0, messageId: 0, acked: 0 };
      socket.on('data', (d: Buffer) => (pub.acked += d.length / 4)); // only 4-byte PUBACKs come back
      return pub;
    }),
  );
}

function packets(pub: Publisher, count: number): Buffer {
  const size = pub.header.length + 2 + 64;
  const out = Buffer.allocUnsafe(size * count);
  const ts = Date.now();
  for (let k = 0; k < count; k++) {
    const at = k * size;
    pub.header.copy(out, at);
    pub.messageId = (pub.messageId % 65535) + 1;
    out.writeUInt16BE(pub.messageId, at + pub.header.length);
    telemetryPayload(ts, pub.seq++).copy(out, at + pub.header.length + 2);
  }
  return out;
}

/** Offers `rate` msgs/s spread over all publishers for `seconds`; a publisher whose socket is full skips its turn. */
function point(rate: number, seconds: number): Promise<{ sent: number; heldBack: number; acked: number }> {
  for (const p of publishers) p.acked = 0;
  return new Promise((resolve) => {
    const start = performance.now();
    let issued = 0;
    let sent = 0;
    let heldBack = 0;
    let turn = 0;
    const timer = setInterval(() => {
      const elapsed = (performance.now() - start) / 1000;
      const due = Math.floor(rate * Math.min(elapsed, seconds)) - issued;
      issued += due;
      const per = Math.floor(due / publishers.length);
      let extra = due % publishers.length;
      for (let k = 0; k < publishers.length; k++) {
        const pub = publishers[(turn + k) % publishers.length]!;
        const n = per + (extra > 0 ? 1 : 0);
        if (extra > 0) extra--;
        if (n === 0) continue;
        if (pub.socket.writableNeedDrain) {
          heldBack += n;
          continue;
        }
        pub.socket.write(packets(pub, n));
        sent += n;
      }
      turn++;
      if (elapsed >= seconds) {
        clearInterval(timer);
        resolve({ sent, heldBack, acked: publishers.reduce((s, p) => s + p.acked, 0) });
      }
    }, 5);
  });
}

let idleIds = 0;
/** Opens `count` more idle connections (keepalive off); resolves with how many of them connected. */
async function openIdle(port: number, count: number): Promise<number> {
  let connected = 0;
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, () => {
        const id = idleIds++;
        return open(port, `${deviceName(id % 100)}:idle-${id}`, deviceName(id % 100), 0).catch(() => undefined);
      }),
    );
    const sockets = batch.filter((s): s is Socket => s !== undefined);
    connected += sockets.length;
    idle.push(...sockets);
  }
  return connected;
}

type Command =
  | { cmd: 'connect'; port: number; devices: number; subscriber: boolean; subscriberPort?: number; persistentSubscriber?: boolean }
  | { cmd: 'point'; rate: number; seconds: number }
  | { cmd: 'receiver' }
  | { cmd: 'reset' }
  | { cmd: 'idle'; port: number; count: number }
  | { cmd: 'close' };

process.on('message', (msg: Command) => {
  const reply = (m: object): void => void process.send!(m);
  switch (msg.cmd) {
    case 'connect':
      connectAll(msg.port, msg.devices, msg.subscriber, msg.subscriberPort, msg.persistentSubscriber).then(
        () => reply({ cmd: 'connect' }),
        (err: Error) => reply({ cmd: 'connect', error: err.message }),
      );
      break;
    case 'point':
      void point(msg.rate, msg.seconds).then((r) => reply({ cmd: 'point', ...r }));
      break;
    case 'receiver':
      reply({ cmd: 'receiver', result: receiver.result() });
      break;
    case 'reset':
      receiver.reset();
      break;
    case 'idle':
      void openIdle(msg.port, msg.count).then((n) => reply({ cmd: 'idle', connected: n }));
      break;
    case 'close':
      for (const s of [...publishers.map((p) => p.socket), ...idle, ...(subscriber ? [subscriber] : [])]) s.destroy();
      publishers = [];
      idle = [];
      subscriber = undefined;
      reply({ cmd: 'close' });
      break;
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ cmd: 'ready' });
