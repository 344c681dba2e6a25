// Hand-made MQTT 3.1.1 packets over plain sockets, for tests that need what no client library
// sends: floods at socket speed, readers that stop reading, broken or oversized packets.
import { connect, type Socket } from 'node:net';
import { withTimeout } from '../../lib/wait.js';

function withLength(first: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    len.push(byte);
  } while (n > 0);
  return Buffer.concat([Buffer.from([first, ...len]), body]);
}

function str(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

export function connectPacket(clientId: string, opts: { clean?: boolean; username?: string; password?: string } = {}): Buffer {
  let flags = opts.clean === false ? 0 : 0x02;
  if (opts.username !== undefined) flags |= 0x80;
  if (opts.password !== undefined) flags |= 0x40;
  const parts = [str('MQTT'), Buffer.from([4, flags, 0, 60]), str(clientId)];
  if (opts.username !== undefined) parts.push(str(opts.username));
  if (opts.password !== undefined) parts.push(str(opts.password));
  return withLength(0x10, Buffer.concat(parts));
}

export function subscribePacket(topic: string, qos = 0): Buffer {
  return withLength(0x82, Buffer.concat([Buffer.from([0, 1]), str(topic), Buffer.from([qos])]));
}

export function publishPacket(topic: string, payload: Buffer): Buffer {
  return withLength(0x30, Buffer.concat([str(topic), payload]));
}

/** Opens a socket; resolves once connected. Errors after that are ignored (tests look at 'close'). */
export function openSocket(port: number): Promise<Socket> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.off('error', reject);
        socket.on('error', () => undefined);
        resolve(socket);
      });
      socket.once('error', reject);
    }),
    5000,
    `a TCP connection to 127.0.0.1:${port}`,
  );
}

/** Sends CONNECT and resolves with the CONNACK return code. */
export async function mqttConnect(port: number, clientId: string, opts: Parameters<typeof connectPacket>[1] = {}): Promise<{ socket: Socket; returnCode: number }> {
  const socket = await openSocket(port);
  socket.write(connectPacket(clientId, opts));
  const connack = await withTimeout(
    new Promise<Buffer>((resolve, reject) => {
      socket.once('data', resolve);
      socket.once('close', () => reject(new Error('the broker closed the connection without a CONNACK')));
    }),
    5000,
    'a CONNACK',
  );
  if (connack[0] !== 0x20) throw new Error(`expected a CONNACK, got packet type 0x${connack[0]?.toString(16)}`);
  return { socket, returnCode: connack[3]! };
}

export function closed(socket: Socket, ms: number, what: string): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return withTimeout(new Promise((resolve) => socket.once('close', () => resolve())), ms, what);
}
