// Line-protocol escaping: exact strings for the cases the InfluxDB 1.x parser treats specially,
// and a property test over seeded random strings (newlines, `\`, a trailing `\`, quotes, `,`, `=`,
// spaces, `#`, unicode) written through the real writer into a real influxd and read back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InfluxClient } from '../../historian/influx.js';
import { escapeKey, escapeMeasurement, quoteString, REPLACEMENT } from '../../historian/line-protocol.js';
import { PointBuilder, toPoint } from '../../historian/points.js';
import { startTestInflux, type TestInflux } from '../harness/influx.js';
import { random as seeded } from '../harness/random.js';

const T0 = Math.floor(Date.now() / 1000) * 1000 - 3_600_000;

/**
 * The documented replacement (historian/line-protocol.ts, docs/historian.md), written out
 * independently: in a name, CR and LF, a backslash directly before `,` `=` space `"` or at the
 * end, and the tabs and NULs it starts with become U+FFFD.
 */
function expectedName(name: string): string {
  let out = '';
  let leading = true;
  for (let i = 0; i < name.length; i++) {
    const char = name[i]!;
    const next = name[i + 1];
    leading &&= char === '\t' || char === '\u0000';
    const unwritable = leading || char === '\n' || char === '\r' || (char === '\\' && (next === undefined || ',= "'.includes(next)));
    out += unwritable ? REPLACEMENT : char;
  }
  return out;
}

const PIECES = ['a', 'Z', 'q', '7', '_', '-', '.', '\n', '\r', '\r\n', '\\', '\\\\', '"', "'", ',', '=', ' ', '#', '\t', 'é', '°C', '日本', '🙂', '\u0000', '\\n', '\\,', 'x=y', 'state'];

function randomString(random: () => number, maxPieces: number): string {
  const count = 1 + Math.floor(random() * maxPieces);
  let out = random() < 0.15 ? '#' : '';
  for (let i = 0; i < count; i++) out += PIECES[Math.floor(random() * PIECES.length)]!;
  if (random() < 0.3) out += '\\';
  return out;
}

describe('line-protocol escaping', () => {
  it('escapes separators and replaces what line protocol cannot carry', () => {
    expect(escapeKey('bay 1,east=2')).toBe('bay\\ 1\\,east\\=2');
    expect(escapeKey('x\nstate')).toBe(`x${REPLACEMENT}state`);
    expect(escapeKey('x\\')).toBe(`x${REPLACEMENT}`);
    expect(escapeKey('a\\,b')).toBe(`a${REPLACEMENT}\\,b`);
    expect(escapeKey('a\\\\')).toBe(`a\\${REPLACEMENT}`);
    expect(escapeKey('C:\\motor')).toBe('C:\\motor');
    expect(escapeKey('\t\u0000k\t')).toBe(`${REPLACEMENT}${REPLACEMENT}k\t`);
    expect(escapeMeasurement('#m, x=1')).toBe(`${REPLACEMENT}m\\,\\ x=1`);
    expect(quoteString('say "hi" \\ bye\nnext')).toBe('"say \\"hi\\" \\\\ bye\nnext"');
  });
});

describe('line protocol against influxd', () => {
  let influx: TestInflux;
  let client: InfluxClient;
  const database = 'lp';

  beforeAll(async () => {
    influx = await startTestInflux();
    await influx.query(`CREATE DATABASE ${database}`);
    client = new InfluxClient({ url: influx.url, database });
  });
  afterAll(async () => {
    client?.close();
    await influx?.stop();
  });

  async function rows(q: string): Promise<Record<string, unknown>[]> {
    const [result] = await influx.query(q, database);
    if (result?.error) throw new Error(result.error);
    return (result?.series ?? []).flatMap((s) => s.values.map((row) => ({ _measurement: s.name, ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, row[i]])) })));
  }

  it('round-trips random tag keys and values, field keys and string fields (seeded), and writes nothing else', async () => {
    const random = seeded(0x11e9);
    const CASES = 300;
    const used = new Set(['time', 'case', 'n', 'client', 'topic', 'reason', 'payload']);
    const unique = (): string => {
      for (;;) {
        const name = randomString(random, 6);
        const stored = expectedName(name);
        if (!used.has(stored) && stored.toLowerCase() !== 'time') {
          used.add(stored);
          return name;
        }
      }
    };
    const cases = Array.from({ length: CASES }, (_, i) => ({ i, tagKey: unique(), tagValue: randomString(random, 8), fieldKey: unique(), text: randomString(random, 10) }));
    const lines = cases.map((c) => new PointBuilder('telemetry').tag('case', String(c.i)).tag(c.tagKey, c.tagValue).str(c.fieldKey, c.text).int('n', c.i).at(T0 + c.i, 0));
    // Dead letters carry a client id from the topic: any string without '/'.
    const dead = Array.from({ length: 50 }, (_, i) => ({ i, client: randomString(random, 6).replaceAll('/', '|'), topic: randomString(random, 6), reason: randomString(random, 6), payload: randomString(random, 6) }));
    for (const d of dead) {
      const point = toPoint(`lw/_dead/${d.client}`, JSON.stringify({ ts: T0 + d.i, topic: d.topic, reason: d.reason, payload: d.payload }));
      expect(point.ok, `dead letter ${JSON.stringify(d.client)}`).toBe(true);
      if (point.ok) lines.push(point.line);
    }
    // Random measurement names, through the measurement escaper.
    const measurements = Array.from({ length: 50 }, (_, i) => ({ i, name: i % 2 ? `${i}${randomString(random, 5)}` : `${randomString(random, 5)}${i}` }));
    for (const m of measurements) lines.push(`${escapeMeasurement(m.name)},case=${m.i} n=${m.i}i ${T0 + m.i}000000`);

    await client.write(lines.join('\n'));

    const stored = await rows('SELECT * FROM "telemetry"');
    expect(stored).toHaveLength(CASES);
    for (const row of stored) {
      const c = cases[Number(row.n)]!;
      expect({ case: row.case, tag: row[expectedName(c.tagKey)], field: row[expectedName(c.fieldKey)] }, JSON.stringify(c)).toEqual({ case: String(c.i), tag: expectedName(c.tagValue), field: c.text });
    }
    const letters = await rows('SELECT * FROM "dead_letters"');
    expect(letters).toHaveLength(dead.length);
    const byTime = new Map(letters.map((row) => [Number(row.time) - T0, row]));
    for (const d of dead) {
      expect(byTime.get(d.i), JSON.stringify(d)).toMatchObject({ client: expectedName(d.client), topic: d.topic, reason: d.reason, payload: d.payload });
    }
    const [shown] = await influx.query('SHOW MEASUREMENTS', database);
    const names = (shown?.series?.[0]?.values ?? []).map((v) => v[0]);
    expect(names.sort()).toEqual(['dead_letters', 'telemetry', ...measurements.map((m) => expectedName(m.name).replace(/^#/, REPLACEMENT))].sort());
  });
});
