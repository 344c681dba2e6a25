// A broker restart loses nothing it accepted (issue 13), with the default store (disk): real
// `linewatch broker` processes on one data dir, killed with SIGTERM or SIGKILL and started again,
// with mosquitto clients, MQTT.js and a raw MQTT socket as clients.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as connectTcp, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addAccount } from '../../../broker/accounts.js';
import { waitFor, withTimeout } from '../../../lib/wait.js';
import { startBrokerProcess, type BrokerProcess } from '../../harness/broker-process.js';
import { mosquittoPub, mosquittoSub, run } from '../../harness/mosquitto-clients.js';

const admin = { username: 'ops', password: 'ops-password-7Qx' };
const WAIT_MS = 15_000;
/** Starting, killing and restarting brokers on a busy 2-core machine. */
const TEST_TIMEOUT_MS = 120_000;

let dir: string;
let devicesFile: string;
const brokers: BrokerProcess[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'linewatch-restart-'));
  devicesFile = join(dir, 'devices.json');
  await addAccount(devicesFile, { ...admin, role: 'admin' });
});
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.kill('SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
});

/** `linewatch broker` on the test's data dir with the default store. */
async function broker(): Promise<BrokerProcess> {
  const started = await startBrokerProcess(['--devices-file', devicesFile, '--data-dir', join(dir, 'data')]);
  brokers.push(started);
  return started;
}

async function restart(old: BrokerProcess, signal: NodeJS.Signals): Promise<BrokerProcess> {
  const code = await old.kill(signal);
  if (signal === 'SIGTERM') expect(code).toBe(0);
  return broker();
}

const mqttOptions = (clientId: string, extra: IClientOptions = {}): IClientOptions => ({ ...admin, clientId: `${admin.username}:${clientId}`, reconnectPeriod: 0, ...extra });

/** mosquitto_sub -c: subscribes with a persistent session and exits once subscribed (-E). */
async function subscribeAndLeave(port: number, id: string, filter: string, qos: 1 | 2): Promise<void> {
  const result = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '-t', filter, '-q', String(qos), '-c', '-E', '-i', `${admin.username}:${id}`, '-u', admin.username, '-P', admin.password]);
  expect(result.code, result.stderr).toBe(0);
}

describe.each(['SIGTERM', 'SIGKILL'] as const)('the issue\'s repro, restarted with %s', (signal) => {
  it('a persistent mosquitto_sub gets the QoS 1 message queued while it was away and the retained one', async () => {
    const first = await broker();
    await subscribeAndLeave(first.port, 'persist-sub', 'persist/#', 1);
    expect((await mosquittoPub(first.port, 'persist/queued', 'queued-1', { qos: 1, credentials: admin })).code).toBe(0);
    expect((await mosquittoPub(first.port, 'persist/retained', 'kept-1', { qos: 1, retain: true, credentials: admin })).code).toBe(0);
    const second = await restart(first, signal);
    const back = await mosquittoSub(second.port, 'persist/#', { count: 2, seconds: 10, qos: 1, credentials: admin, id: `${admin.username}:persist-sub`, persistent: true });
    expect(back.stdout.trim().split('\n').sort()).toEqual(['persist/queued queued-1', 'persist/retained kept-1']);
  }, TEST_TIMEOUT_MS);
});

describe('after a SIGKILL', () => {
  it('a QoS 2 message queued for an offline persistent subscriber is delivered', async () => {
    const first = await broker();
    await subscribeAndLeave(first.port, 'qos2-sub', 'persist/q2', 2);
    expect((await mosquittoPub(first.port, 'persist/q2', 'exactly-once', { qos: 2, credentials: admin })).code).toBe(0);
    const second = await restart(first, 'SIGKILL');
    const back = await mosquittoSub(second.port, 'persist/q2', { count: 1, seconds: 10, qos: 2, credentials: admin, id: `${admin.username}:qos2-sub`, persistent: true });
    expect(back.stdout.trim()).toBe('persist/q2 exactly-once');
  }, TEST_TIMEOUT_MS);

  it('a QoS 1 message delivered but not acknowledged is delivered again', async () => {
    const first = await broker();
    const url = (b: BrokerProcess): string => `mqtt://127.0.0.1:${b.port}`;
    const silent = await mqtt.connectAsync(url(first), mqttOptions('inflight-sub', { clean: false }));
    const seen: string[] = [];
    // Never calls back, so MQTT.js never sends the PUBACK: the message stays in flight.
    silent.handleMessage = (packet) => void seen.push(String(packet.payload));
    await silent.subscribeAsync('persist/inflight', { qos: 1 });
    expect((await mosquittoPub(first.port, 'persist/inflight', 'unacked-1', { qos: 1, credentials: admin })).code).toBe(0);
    await waitFor(() => seen.includes('unacked-1'), WAIT_MS, 'the in-flight message at the subscriber');
    const second = await restart(first, 'SIGKILL');
    silent.end(true);
    const again = await mqtt.connectAsync(url(second), mqttOptions('inflight-sub', { clean: false }));
    try {
      const redelivered = await withTimeout(new Promise<string>((resolve) => again.once('message', (_topic, payload) => resolve(String(payload)))), WAIT_MS, 'the unacknowledged message after the restart');
      expect(redelivered).toBe('unacked-1');
    } finally {
      await again.endAsync(true);
    }
  }, TEST_TIMEOUT_MS);

  it('an incoming QoS 2 message stored before its PUBREL is not published twice when the publisher sends it again', async () => {
    const first = await broker();
    await subscribeAndLeave(first.port, 'in2-sub', 'persist/in2', 2);
    const publisher = await RawClient.connect(first.port, `${admin.username}:in2-pub`);
    publisher.send({ cmd: 'publish', topic: 'persist/in2', payload: Buffer.from('once'), qos: 2, messageId: 42, retain: false, dup: false });
    expect(await publisher.next('pubrec')).toMatchObject({ messageId: 42 });
    // Killed before the PUBREL: the publisher must send the PUBLISH again (dup), the broker must recognise it.
    const second = await restart(first, 'SIGKILL');
    const again = await RawClient.connect(second.port, `${admin.username}:in2-pub`);
    again.send({ cmd: 'publish', topic: 'persist/in2', payload: Buffer.from('once'), qos: 2, messageId: 42, retain: false, dup: true });
    expect(await again.next('pubrec')).toMatchObject({ messageId: 42 });
    again.send({ cmd: 'pubrel', messageId: 42 });
    expect(await again.next('pubcomp')).toMatchObject({ messageId: 42 });
    again.close();
    const back = await mosquittoSub(second.port, 'persist/in2', { count: 2, seconds: 3, qos: 2, credentials: admin, id: `${admin.username}:in2-sub`, persistent: true });
    expect(back.stdout.trim().split('\n')).toEqual(['persist/in2 once']);
  }, TEST_TIMEOUT_MS);

  it('the will of a client that was connected when the broker died is published after the restart', async () => {
    const first = await broker();
    await subscribeAndLeave(first.port, 'will-watch', 'persist/will', 1);
    const doomed = await mqtt.connectAsync(`mqtt://127.0.0.1:${first.port}`, mqttOptions('doomed', { will: { topic: 'persist/will', payload: Buffer.from('doomed went away'), qos: 1, retain: false } }));
    doomed.on('error', () => undefined);
    const second = await restart(first, 'SIGKILL');
    doomed.end(true);
    const back = await mosquittoSub(second.port, 'persist/will', { count: 1, seconds: 10, qos: 1, credentials: admin, id: `${admin.username}:will-watch`, persistent: true });
    expect(back.stdout.trim()).toBe('persist/will doomed went away');
  }, TEST_TIMEOUT_MS);
});

/** An MQTT 3.1.1 client on a bare socket (mqtt-packet), for a QoS 2 handshake stopped half-way. */
class RawClient {
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 });
  private readonly received: mqttPacket.Packet[] = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (data: Buffer) => this.parser.parse(data));
    socket.on('error', () => undefined);
    this.parser.on('packet', (packet: mqttPacket.Packet) => this.received.push(packet));
  }

  static async connect(port: number, clientId: string): Promise<RawClient> {
    const socket = connectTcp(port, '127.0.0.1');
    await withTimeout(new Promise<void>((resolve) => socket.once('connect', () => resolve())), WAIT_MS, 'a TCP connection to the broker');
    const client = new RawClient(socket);
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId, keepalive: 60, username: admin.username, password: Buffer.from(admin.password) });
    expect(await client.next('connack')).toMatchObject({ returnCode: 0 });
    return client;
  }

  send(packet: mqttPacket.Packet): void {
    this.socket.write(mqttPacket.generate(packet));
  }

  async next(cmd: mqttPacket.Packet['cmd']): Promise<mqttPacket.Packet> {
    return waitFor(() => this.received.find((packet) => packet.cmd === cmd), WAIT_MS, `a ${cmd} from the broker`);
  }

  close(): void {
    this.socket.destroy();
  }
}
