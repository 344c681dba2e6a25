// Server-sent events to the browsers. One timer coalesces every change of the line view into at
// most `maxUpdatesPerSecond` `update` events per client; each client has a bounded queue of
// events not yet taken by its socket, and a client that falls that far behind is dropped (and
// counted) rather than let memory grow.
import type { ServerResponse } from 'node:http';
import type { LineDelta, LineSnapshot } from './line-view.js';

export interface SseOptions {
  /** Upper bound on `update` events per client per second. */
  maxUpdatesPerSecond: number;
  /** Events a client may have waiting behind a full socket before it is dropped. */
  maxQueuedEvents: number;
  /** Comment line sent when idle so proxies keep the connection open (ms). */
  keepAliveMs: number;
}

export interface SseCounters {
  sse_clients: number;
  sse_events_sent: number;
  sse_clients_dropped_slow: number;
}

interface Client {
  res: ServerResponse;
  queue: string[];
  waitingForDrain: boolean;
}

export class SseHub {
  readonly counters: SseCounters = { sse_clients: 0, sse_events_sent: 0, sse_clients_dropped_slow: 0 };
  private readonly clients = new Set<Client>();
  private tick: NodeJS.Timeout | undefined;
  private keepAlive: NodeJS.Timeout | undefined;

  constructor(
    private readonly source: { snapshot(): LineSnapshot; takeDelta(): LineDelta | undefined },
    private readonly options: SseOptions,
  ) {}

  start(): void {
    this.tick = setInterval(() => this.flush(), Math.ceil(1000 / this.options.maxUpdatesPerSecond));
    this.keepAlive = setInterval(() => this.broadcast(': keep-alive\n\n'), this.options.keepAliveMs);
  }

  /** Takes over `res` as an event stream and sends the full picture first. */
  attach(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const client: Client = { res, queue: [], waitingForDrain: false };
    this.clients.add(client);
    this.counters.sse_clients = this.clients.size;
    res.on('close', () => this.remove(client));
    res.on('drain', () => this.drain(client));
    this.send(client, formatEvent('snapshot', this.source.snapshot()));
  }

  /** Sends what changed since the last tick to every client (one serialisation for all). */
  flush(): void {
    const delta = this.source.takeDelta();
    if (!delta || this.clients.size === 0) return;
    this.broadcast(formatEvent('update', delta));
  }

  stop(): void {
    clearInterval(this.tick);
    clearInterval(this.keepAlive);
    for (const client of this.clients) client.res.end();
    this.clients.clear();
    this.counters.sse_clients = 0;
  }

  private broadcast(text: string): void {
    for (const client of this.clients) this.send(client, text);
  }

  private send(client: Client, text: string): void {
    if (client.waitingForDrain) {
      if (client.queue.length >= this.options.maxQueuedEvents) {
        this.counters.sse_clients_dropped_slow++;
        this.remove(client);
        client.res.destroy();
        return;
      }
      client.queue.push(text);
      return;
    }
    this.counters.sse_events_sent++;
    if (!client.res.write(text)) client.waitingForDrain = true;
  }

  private drain(client: Client): void {
    client.waitingForDrain = false;
    while (client.queue.length > 0 && !client.waitingForDrain) {
      this.counters.sse_events_sent++;
      if (!client.res.write(client.queue.shift()!)) client.waitingForDrain = true;
    }
  }

  private remove(client: Client): void {
    this.clients.delete(client);
    this.counters.sse_clients = this.clients.size;
  }
}

function formatEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
