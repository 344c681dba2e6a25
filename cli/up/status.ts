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
  /** Points waiting to reach InfluxDB (spooled or buffered), or null without a historian. */
  influxBacklog: number | null;
  /** Why the historian refuses events right now (the spool or the disk is full), if it does. */
  historianRefusing?: 'spool full' | 'disk full';
}

export function formatStatus(f: StatusFigures): string {
  return [
    `devices ${f.devicesOnline}/${f.devicesKnown} online`,
    `${f.eventsPerSecond.toFixed(1)} events/s`,
    `commands ${f.commands} (${f.commandsAcked} acked)`,
    `alarms ${f.activeAlerts} active${f.alarmsUnacked ? `, ${f.alarmsUnacked} to acknowledge` : ''}`,
    f.influxBacklog === null ? 'history off' : `InfluxDB backlog ${f.influxBacklog}${f.historianRefusing ? ` (${f.historianRefusing}: refusing events)` : ''}`,
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
