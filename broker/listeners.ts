// The sockets in front of Aedes: MQTT over TCP, over WebSocket (path /mqtt) and over TLS.
// Every listener hands its connections to one `accept` function (limits, then aedes.handle).
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { listenOn } from '../lib/listen.js';

export type Accept = (stream: Duplex, remote: string, req?: IncomingMessage) => void;

export interface Listener {
  readonly kind: 'mqtt' | 'ws' | 'tls';
  readonly port: number;
  /** False once its server closed (stop, or the socket failed). */
  readonly listening: boolean;
  close(): Promise<void>;
}

function listener(kind: Listener['kind'], port: number, server: TcpServer | HttpServer, close: () => Promise<void>): Listener {
  return {
    kind,
    port,
    get listening() {
      return server.listening;
    },
    close,
  };
}

/** Tracks a server's open sockets so close() can end them instead of waiting for clients to leave. */
function closer(server: TcpServer | HttpServer, sockets: Set<Socket>, extra?: () => void): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      extra?.();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
}

/** Adds each socket to `sockets` until it closes, with one 'close' handler shared by all of them (memory per idle connection). */
function tracker(sockets: Set<Socket>): (socket: Socket) => void {
  function untrack(this: Socket): void {
    sockets.delete(this);
  }
  return (socket) => {
    sockets.add(socket);
    socket.on('close', untrack);
  };
}

function remoteOf(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

export async function listenTcp(host: string, port: number, accept: Accept): Promise<Listener> {
  const sockets = new Set<Socket>();
  const track = tracker(sockets);
  const server = createTcpServer((socket) => {
    track(socket);
    socket.setNoDelay(true);
    accept(socket, remoteOf(socket));
  });
  const bound = await listenOn(server, { host, port, what: 'MQTT over TCP', setting: 'broker.port' });
  return listener('mqtt', bound, server, closer(server, sockets));
}

export async function listenTls(host: string, port: number, certFile: string, keyFile: string, accept: Accept): Promise<Listener> {
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (err) {
    throw new Error(`cannot read the TLS certificate/key (${certFile}, ${keyFile}): ${(err as Error).message}; check broker.tls.cert and broker.tls.key`, { cause: err });
  }
  const sockets = new Set<Socket>();
  const track = tracker(sockets);
  const server = createTlsServer({ cert, key }, (socket) => {
    socket.setNoDelay(true);
    accept(socket, remoteOf(socket));
  });
  server.on('connection', track);
  // A failed TLS handshake is the client's problem, not ours: don't let it emit an unhandled error.
  server.on('tlsClientError', () => undefined);
  const bound = await listenOn(server, { host, port, what: 'MQTT over TLS', setting: 'broker.tls.port' });
  return listener('tls', bound, server, closer(server, sockets));
}

export async function listenWebSocket(host: string, port: number, accept: Accept): Promise<Listener> {
  const sockets = new Set<Socket>();
  const track = tracker(sockets);
  const http = createHttpServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('MQTT over WebSocket is served at /mqtt\n');
  });
  http.on('connection', track);
  const wss = new WebSocketServer({ server: http, path: '/mqtt', perMessageDeflate: false });
  wss.on('connection', (ws, req) => {
    const stream = createWebSocketStream(ws);
    // The stream re-emits socket errors; Aedes listens for them once it has the stream.
    stream.on('error', () => undefined);
    accept(stream, remoteOf(req.socket), req);
  });
  // ws re-emits its HTTP server's errors on the WebSocketServer, which would make a port in use
  // an unhandled 'error' event: listenOn reports that one (on the HTTP server itself).
  wss.on('error', () => undefined);
  const bound = await listenOn(http, { host, port, what: 'MQTT over WebSocket', setting: 'broker.wsPort' });
  return listener('ws', bound, http, closer(http, sockets, () => wss.close()));
}
