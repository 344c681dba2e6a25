// Binding a server to host:port, the one way every listener linewatch opens does it (the broker's
// MQTT, WebSocket and TLS listeners, /healthz and /metrics, the dashboard): an address already in
// use is an AddressInUse — one line naming the address, what wanted it and the setting that
// moves it, exit code 2 — never an unhandled 'error' event.
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

/** The exit code of a command that stopped because an address it must listen on is in use. */
export const EXIT_ADDRESS_IN_USE = 2;

export interface ListenTarget {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** What listens, for the message: "MQTT over WebSocket", "the dashboard". */
  what: string;
  /** The config key that sets the port ("broker.wsPort"); a command names its flag instead (AddressInUse.withFix). */
  setting: string;
}

export function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export class AddressInUse extends Error {
  override name = 'AddressInUse';
  readonly userFacing = true;
  readonly exitCode = EXIT_ADDRESS_IN_USE;

  constructor(
    readonly target: ListenTarget,
    /** What to do about it, e.g. "pass --ws-port PORT …". */
    readonly fix = `set ${target.setting} to another port (0 picks a free one)`,
  ) {
    super(`${hostPort(target.host, target.port)} is already in use (another program, or another linewatch, listens there), so ${target.what} cannot listen on it; ${fix}`);
  }

  /** The same error with another fix (a command names its own flag). */
  withFix(fix: string): AddressInUse {
    return new AddressInUse(this.target, fix);
  }
}

/** Listens; resolves with the bound port. EADDRINUSE rejects with AddressInUse, anything else with what failed and where. */
export function listenOn(server: Server, target: ListenTarget): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(err.code === 'EADDRINUSE' ? new AddressInUse(target) : new Error(`${target.what} cannot listen on ${hostPort(target.host, target.port)}: ${err.message}; check ${target.setting}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(target.port, target.host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
