// The historian's worker thread (historian.thread "worker"; the main-thread side is
// historian/thread.ts). It runs the same Historian on a ThreadBus to the main thread's bus, says
// how it is every SNAPSHOT_EVERY_MS, and hands its log lines to the main thread.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { ThreadBus } from '../bus/thread-bridge.js';
import { forwardLogs } from '../lib/log.js';
import { Historian, type HistorianOptions } from './index.js';
import { SNAPSHOT_EVERY_MS, type FromHistorianThread, type HistorianThreadData, type ToHistorianThread } from './thread-protocol.js';

const control = parentPort as MessagePort;
const data = workerData as HistorianThreadData;
const say = (message: FromHistorianThread): void => control.postMessage(message);
forwardLogs((line, level) => say({ op: 'log', line, level }));

const bus = new ThreadBus(data.busPort);
const options: HistorianOptions = { bus, config: data.config, dataDir: data.dataDir, ...(data.influxUrl === undefined ? {} : { influxUrl: data.influxUrl }), ...(data.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: data.drainTimeoutMs }), ...(data.worker === undefined ? {} : { worker: data.worker }) };
const historian = new Historian(options);
let timer: NodeJS.Timeout | undefined;

function snapshot(): FromHistorianThread {
  return { op: 'snapshot', counters: historian.counters(), gauges: [...historian.gauges], health: historian.health(), info: historian.info(), quality: historian.qualityTotals(), influxUrl: historian.influxUrl };
}

control.on('message', (message: ToHistorianThread) => {
  switch (message.op) {
    case 'start':
      void bus.ready
        .then(() => historian.start())
        .then(
          () => {
            say(snapshot());
            timer = setInterval(() => say(snapshot()), SNAPSHOT_EVERY_MS);
            say({ op: 'started' });
          },
          (err: unknown) => say({ op: 'failed', during: 'started', name: (err as Error).name, message: (err as Error).message }),
        );
      return;
    case 'influxBack':
      historian.influxBack();
      return;
    case 'stop':
      clearInterval(timer);
      void historian
        .stop()
        .then(() => bus.close())
        .then(
          () => {
            say(snapshot());
            say({ op: 'stopped' });
            control.close();
          },
          (err: unknown) => say({ op: 'failed', during: 'stopped', name: (err as Error).name, message: (err as Error).message }),
        );
      return;
  }
});
say({ op: 'loaded' });
