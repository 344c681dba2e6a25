// One serial port kept open: opened with `serialport`, and when it disappears (USB pulled,
// socat gone) reopened with exponential backoff (lib/backoff.ts), bounded by maxDelayMs. Never
// throws upward.
import { EventEmitter } from 'node:events';
import { SerialPort } from 'serialport';
import { Backoff } from '../lib/backoff.js';
import { logger } from '../lib/log.js';

const log = logger('gateway');

export interface SerialLinkOptions {
  path: string;
  baudRate: number;
  lock: boolean;
  minDelayMs: number;
  maxDelayMs: number;
}

export interface SerialLinkEvents {
  data: [Buffer];
  open: [];
  close: [];
}

export class SerialLink extends EventEmitter<SerialLinkEvents> {
  opens = 0;
  reopens = 0;
  openFailures = 0;
  private port: SerialPort | undefined;
  private readonly reopen: Backoff;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastError = '';

  constructor(private readonly options: SerialLinkOptions) {
    super();
    this.reopen = new Backoff({ initialMs: options.minDelayMs, maxMs: options.maxDelayMs });
  }

  get isOpen(): boolean {
    return this.port?.isOpen ?? false;
  }

  start(): void {
    this.stopped = false;
    this.tryOpen();
  }

  /** Writes and waits until the bytes are handed to the OS. */
  write(data: string | Buffer): Promise<void> {
    const port = this.port;
    if (!port?.isOpen) return Promise.reject(new Error(`serial port ${this.options.path} is not open`));
    return new Promise((resolve, reject) => {
      port.write(data, (err) => {
        if (err) return reject(err);
        port.drain((e) => (e ? reject(e) : resolve()));
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private tryOpen(): void {
    if (this.stopped) return;
    const { path, baudRate, lock } = this.options;
    // hupcl: false — dropping DTR on close means nothing on a PTY and the ioctl fails there (ENOTTY).
    const port = new SerialPort({ path, baudRate, lock, hupcl: false, autoOpen: false });
    port.on('data', (d: Buffer) => this.emit('data', d));
    port.on('error', (err) => log.warn({ path, err: err.message }, 'serial port error'));
    port.on('close', () => {
      if (this.port !== port) return;
      this.port = undefined;
      this.emit('close');
      if (!this.stopped) {
        log.warn({ path }, 'serial port closed; reopening with backoff');
        this.schedule();
      }
    });
    this.port = port;
    port.open((err) => {
      if (this.stopped) {
        if (!err) port.close();
        return;
      }
      if (err) {
        this.port = undefined;
        this.openFailures++;
        const retryInMs = this.schedule();
        if (err.message !== this.lastError) log.warn({ path, err: err.message, retryInMs }, 'cannot open serial port; retrying');
        this.lastError = err.message;
        return;
      }
      this.lastError = '';
      if (this.opens > 0) this.reopens++;
      this.opens++;
      this.reopen.reset();
      log.info({ path, baudRate }, 'serial port open');
      this.emit('open');
    });
  }

  /** Tries again after the next backoff delay; returns it. */
  private schedule(): number {
    clearTimeout(this.timer);
    const delay = this.reopen.next();
    this.timer = setTimeout(() => this.tryOpen(), delay);
    return delay;
  }
}
