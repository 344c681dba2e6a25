// The status line of `linewatch up`: rewritten in place every few seconds on a terminal, one
// plain line per interval otherwise (logs, CI).

export interface StatusFigures {
  devicesOnline: number;
  devicesKnown: number;
  eventsPerSecond: number;
  commands: number;
  commandsAcked: number;
  /** Alarms whose condition is active now (shelved ones not counted). */
  activeAlerts: number;
  /** Alarms waiting for an operator's acknowledgement, active or returned to normal (ISA-18.2). */
  alarmsUnacked?: number;
  /** What waits in the historian's spool for InfluxDB, or null without a historian. */
  influxBacklog: InfluxBacklog | null;
  /** InfluxDB does not take writes: why, when known (the managed influxd is being restarted, or it gave up). */
  influxDown?: 'restarting' | 'not restarted: gave up' | 'unreachable';
  /** Why the historian refuses events right now (the spool or the disk is full), if it does. */
  historianRefusing?: 'spool full' | 'disk full';
}

/** The spool's backlog: records and bytes not yet in InfluxDB, and how long the oldest has waited. */
export interface InfluxBacklog {
  records: number;
  bytes: number;
  oldestAgeSeconds: number;
}

function formatBacklog(backlog: InfluxBacklog): string {
  if (backlog.records === 0 && backlog.bytes === 0) return 'InfluxDB backlog 0';
  return `InfluxDB backlog ${backlog.records} events, ${formatBytes(backlog.bytes)}, oldest ${formatAge(backlog.oldestAgeSeconds)}`;
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function formatStatus(f: StatusFigures): string {
  return [
    `devices ${f.devicesOnline}/${f.devicesKnown} online`,
    `${f.eventsPerSecond.toFixed(1)} events/s`,
    `commands ${f.commands} (${f.commandsAcked} acked)`,
    `alarms ${f.activeAlerts} active${f.alarmsUnacked ? `, ${f.alarmsUnacked} to acknowledge` : ''}`,
    f.influxBacklog === null
      ? 'history off'
      : `${formatBacklog(f.influxBacklog)}${f.influxDown ? ` (InfluxDB down: ${f.influxDown})` : ''}${f.historianRefusing ? ` (${f.historianRefusing}: refusing events)` : ''}`,
  ].join(' · ');
}

export class StatusLine {
  private timer: NodeJS.Timeout | undefined;
  private readonly tty: boolean;

  constructor(
    private readonly figures: () => StatusFigures,
    private readonly out: NodeJS.WriteStream = process.stdout,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  start(intervalMs = this.tty ? 2000 : 5000): void {
    this.timer = setInterval(() => this.print(), intervalMs);
    this.timer.unref();
  }

  print(): void {
    const text = `status: ${formatStatus(this.figures())}`;
    if (this.tty) this.out.write(`\r\x1b[2K${text}`);
    else this.out.write(`${new Date().toISOString()} ${text}\n`);
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.tty) this.out.write('\n');
  }
}
