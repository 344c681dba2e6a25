// Worker thread for bench/rules.ts: the line's devices over TCP. One connection publishes
// telemetry (QoS 0) at a fixed offered rate — every 10th message per device is "hot" — and a
// device connection subscribed to lw/B/+/cmd (QoS 1) receives the commands, acks them and times
// each one against the send time of the event that caused it. Own thread, own event loop, so the
// engine's thread is measured alone; both timestamps come from this thread's clock.
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { PacketReader, decodePublish, encodeConnect, encodePuback, encodePublish, encodeSubscribe } from './mqtt-wire.js';

export interface LoadRequest {
  port: number;
  rate: number;
  seconds: number;
  devices: number;
}

export interface LoadResult {
  sent: number;
  hot: number;
  received: number;
  duplicates: number;
  latenciesMs: number[];
}

function open(port: number, clientId: string): Promise<{ socket: Socket; reader: PacketReader }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.once('error', reject);
    socket.write(encodeConnect(clientId));
    const reader = new PacketReader();
    socket.once('data', (d: Buffer) => {
      if (d[0] !== 0x20 || d[3] !== 0) return reject(new Error(`${clientId}: CONNACK ${d[3]}`));
      socket.off('error', reject);
      socket.on('error', () => undefined);
      if (d.length > 4) socket.unshift(d.subarray(4));
      resolve({ socket, reader });
    });
  });
}

async function runLoad(req: LoadRequest): Promise<LoadResult> {
  const total = Math.round(req.rate * req.seconds);
  const sentAt = new Float64Array(total);
  const seen = new Uint8Array(total);
  const latencies: number[] = [];
  let received = 0;
  let duplicates = 0;

  const device = await open(req.port, 'bench-rules-devices');
  device.socket.on('data', (d: Buffer) => {
    device.reader.push(d, (p) => {
      if (p.type !== 3) return; // PUBLISH
      const { topic, messageId, payload } = decodePublish(p);
      if (messageId) device.socket.write(encodePuback(messageId));
      const cmd = JSON.parse(payload.toString()) as { id: string; params: { speed: number } };
      const n = cmd.params.speed;
      if (seen[n]) duplicates++;
      else {
        seen[n] = 1;
        received++;
        latencies.push(performance.now() - sentAt[n]!);
      }
      // The closed loop: ack it, as a real device would.
      device.socket.write(encodePublish(topic.replace(/\/cmd$/, '/cmd/ack'), Buffer.from(JSON.stringify({ id: cmd.id, result: 'done', ts: Date.now() })), 0));
    });
  });
  device.socket.write(encodeSubscribe('lw/B/+/cmd', 1));
  await new Promise((r) => setTimeout(r, 200)); // SUBACK

  const pub = await open(req.port, 'bench-rules-publisher');
  pub.socket.on('data', () => undefined);
  const seq = new Uint32Array(req.devices);
  let sent = 0;
  let hot = 0;
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - start) * req.rate) / 1000));
      const batch: Buffer[] = [];
      for (; sent < due; sent++) {
        const d = sent % req.devices;
        const isHot = Math.floor(sent / req.devices) % 10 === 0 ? 1 : 0;
        if (isHot) hot++;
        const body = `{"ts":${Date.now()},"seq":${seq[d]!++},"values":{"hot":${isHot},"n":${sent}}}`;
        batch.push(encodePublish(`lw/B/r${req.rate}-d${d}/telemetry`, Buffer.from(body), 0));
        sentAt[sent] = performance.now();
      }
      if (batch.length > 0) pub.socket.write(Buffer.concat(batch));
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  // Let the last commands arrive (bounded).
  const deadline = performance.now() + 5000;
  while (received < hot && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  pub.socket.destroy();
  device.socket.destroy();
  return { sent, hot, received, duplicates, latenciesMs: latencies };
}

parentPort!.on('message', (req: LoadRequest) => {
  runLoad(req).then(
    (result) => parentPort!.postMessage({ ok: true, result }),
    (err: unknown) => parentPort!.postMessage({ ok: false, error: (err as Error).message }),
  );
});
