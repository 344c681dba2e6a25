// Holds a TCP port on 127.0.0.1 as soon as it is free (bounded), so a managed influxd restarted on
// it fails while held — the window in which a test looks at "influxd is down" without a race.
import { createServer, type Server } from 'node:net';

export async function holdPort(port: number, ms: number): Promise<{ release(): Promise<void> }> {
  const deadline = Date.now() + ms;
  for (;;) {
    // A connection to it is ended at once: the historian's writes fail fast, and close() does not wait for them.
    const server: Server = createServer((socket) => socket.destroy());
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) return { release: () => new Promise<void>((resolve) => server.close(() => resolve())) };
    if (Date.now() > deadline) throw new Error(`port ${port} still taken after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
