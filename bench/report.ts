// Collects benchmark sections and writes BENCHMARKS.md with the machine they ran on.
import { cpus, totalmem, platform, release } from 'node:os';
import { writeFileSync } from 'node:fs';

export interface Table {
  title: string;
  /** What was measured and how, one or two sentences. */
  note?: string;
  columns: string[];
  rows: (string | number)[][];
}

export class Report {
  private readonly tables: Table[] = [];

  add(table: Table): void {
    this.tables.push(table);
    console.log(`\n## ${table.title}`);
    if (table.note) console.log(table.note);
    console.log(renderTable(table));
  }

  write(file = 'BENCHMARKS.md'): void {
    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const lines = [
      '# linewatch benchmarks',
      '',
      `Written by \`npm run bench\` on ${new Date().toISOString()}.`,
      '',
      `Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${platform()} ${release()}, Node ${process.version}.`,
      '',
      'Every figure is counted at the receiver. References (bare Aedes, Mosquitto, raw HTTP) were measured in the same run on the same machine.',
      '',
    ];
    for (const t of this.tables) {
      lines.push(`## ${t.title}`, '');
      if (t.note) lines.push(t.note, '');
      lines.push(renderTable(t), '');
    }
    writeFileSync(file, lines.join('\n'));
    console.log(`\nwrote ${file}`);
  }
}

function renderTable(t: Table): string {
  const head = `| ${t.columns.join(' | ')} |`;
  const sep = `| ${t.columns.map(() => '---').join(' | ')} |`;
  const body = t.rows.map((r) => `| ${r.map(String).join(' | ')} |`);
  return [head, sep, ...body].join('\n');
}
