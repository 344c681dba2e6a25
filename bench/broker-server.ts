// Child process for bench/broker.ts: runs one broker under test (linewatch or bare Aedes),
// optionally with an in-process Bus consumer, and answers the parent over IPC.
//   node dist/bench/broker-server.js linewatch <devicesFile> [inproc|tcp] [memory|disk] [dataDir]
//   node dist/bench/broker-server.js linewatch-open        (open mode: no authentication, no ACL; payloads validated)
//   node dist/bench/broker-server.js aedes
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { brokerConfigSchema, startBroker } from '../broker/index.js';
import { Receiver } from './broker-receiver.js';
import { roleGrants } from '../config/services.js';

const [kind, devicesFile, consumer, persistence = 'memory', dataDir] = process.argv.slice(2);
const receiver = new Receiver();
let port: number;
let publisherPauses = (): number | undefined => undefined;

if (kind === 'linewatch') {
  const broker = await startBroker(brokerConfigSchema.parse({ persistence, port: 0, wsPort: null, devicesFile, maxConnections: 100_000, statsIntervalMs: 60_000 }), { roles: roleGrants(), dataDir });
  port = broker.ports.mqtt;
  publisherPauses = () => broker.stats().publisherPauses;
  if (consumer === 'inproc') {
    await broker.bus.subscribe('lw/+/+/telemetry', (topic, payload) => receiver.onMessage(topic, payload));
  }
} else if (kind === 'linewatch-open') {
  const broker = await startBroker(brokerConfigSchema.parse({ open: true, persistence, port: 0, wsPort: null, maxConnections: 100_000, statsIntervalMs: 60_000 }), { roles: roleGrants(), dataDir });
  port = broker.ports.mqtt;
  publisherPauses = () => broker.stats().publisherPauses;
} else {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
}

process.on('message', (msg: { cmd: string }) => {
  if (msg.cmd === 'receiver') process.send!({ cmd: 'receiver', result: receiver.result() });
  if (msg.cmd === 'reset') receiver.reset();
  if (msg.cmd === 'pauses') process.send!({ cmd: 'pauses', pauses: publisherPauses() });
  if (msg.cmd === 'cpu') process.send!({ cmd: 'cpu', usage: process.cpuUsage() });
  if (msg.cmd === 'gc') {
    (globalThis as { gc?: () => void }).gc?.();
    process.send!({ cmd: 'gc', heapUsed: process.memoryUsage().heapUsed });
  }
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0)); // a normal exit, so --cpu-prof can write its profile
process.send!({ cmd: 'ready', port });
