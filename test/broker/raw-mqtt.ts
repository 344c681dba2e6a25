// Hand-made MQTT 3.1.1 packets over plain sockets (encoders shared with the benchmark), for
// tests that need what no client library does: floods at socket speed, readers that stop
// reading, broken or oversized packets.
import { connect, type Socket } from 'node:net';
import { encodeConnect, encodeSubscribe, type ConnectOptions } from '../../bench/mqtt-wire.js';
import { withTimeout } from '../../lib/wait.js';

export {
  encodeRemainingLength,
  encodeConnect as connectPacket,
  encodeSubscribe as subscribePacket,
  encodePublish as publishPacket,
} from '../../bench/mqtt-wire.js';

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

/** Sends SUBSCRIBE for `topic` (see subscribePacket) and resolves once its SUBACK arrives. */
export async function subscribeAndWait(socket: Socket, topic: string): Promise<void> {
  const suback = withTimeout(
    new Promise<void>((resolve) => {
      const onData = (data: Buffer): void => {
        if (data.includes(0x90)) {
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
    }),
    10_000,
    `a SUBACK for ${topic}`,
  );
  socket.write(encodeSubscribe(topic));
  await suback;
}

/** Sends CONNECT and resolves with the CONNACK return code. */
export async function mqttConnect(port: number, clientId: string, opts: ConnectOptions = {}): Promise<{ socket: Socket; returnCode: number }> {
  const socket = await openSocket(port);
  socket.write(encodeConnect(clientId, opts));
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
