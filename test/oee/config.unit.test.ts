// The OEE settings moved from historian.oee to their own oee: section; the old place is refused
// with an error that says where they went (docs/configuration.md#oee).
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../config/load.js';
import { DEFAULT_SHIFTS } from '../../oee/config.js';

describe('the oee: section', () => {
  it('has its own defaults (publishIntervalMs as historian.oee had it)', () => {
    const config = parseConfig({});
    expect(config.oee).toEqual({ enabled: true, publishIntervalMs: 10_000, idealRatePerMin: 12, goodField: 'goodCount', scrapField: 'scrapCount', lines: {}, microStopMs: 30_000, stateFile: '.linewatch/oee-state.json', calendar: { timeZone: null, shifts: DEFAULT_SHIFTS, breaks: [], plannedDowntime: [] } });
  });

  it('takes the keys that were under historian.oee', () => {
    const config = parseConfig({ oee: { enabled: false, publishIntervalMs: 2000, lines: { A: { idealRatePerMin: 30, countDevice: 'st-5' } } } });
    expect(config.oee).toMatchObject({ enabled: false, publishIntervalMs: 2000, lines: { A: { idealRatePerMin: 30, countDevice: 'st-5' } } });
  });

  it('refuses historian.oee with an error that names the key and where it moved', () => {
    const old = (): unknown => parseConfig({ historian: { oee: { publishIntervalMs: 2000 } } }, 'linewatch.yaml');
    expect(old).toThrow(ConfigError);
    expect(old).toThrow(/historian\.oee: .*moved to the top-level oee: section.*oee\.publishIntervalMs/s);
  });

  it('refuses historian.oee even when it is empty or only enables OEE', () => {
    expect(() => parseConfig({ historian: { oee: {} } })).toThrow(/historian\.oee: .*moved/);
    expect(() => parseConfig({ historian: { oee: { enabled: true } } })).toThrow(/historian\.oee: .*moved/);
  });
});
