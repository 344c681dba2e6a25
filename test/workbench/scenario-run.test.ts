// `rules test`'s scenario runner: the example rules against the demo line, on the linewatch broker.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../simulators/scenario.js';
import { formatTimeline, runScenario } from '../../workbench/scenario-run.js';

const EXAMPLES = fileURLToPath(new URL('../../rules/examples', import.meta.url));
const DEMO = fileURLToPath(new URL('../../simulators/scenarios/demo.yaml', import.meta.url));

describe('runScenario', () => {
  it('runs on the linewatch broker (startBroker): its counters come back with the timeline, nothing refused', async () => {
    const result = await runScenario({ dir: EXAMPLES, scenario: loadScenarioFile(DEMO), seed: 1, durationMs: 61_000 });
    // Keys only the linewatch broker has (bare Aedes has no counters at all).
    expect(result.brokerCounters).toMatchObject({ password_checks: 0, rejected_invalid_payload: 0, rejected_publish_denied: 0, inprocess_redelivery_gave_up: 0 });
    expect(formatTimeline(result.timeline).slice(0, 4)).toEqual([
      '+   59.9s  command  cmjuohs00-1  st-2 stop {}  rule:station-jam-stops-feeder',
      '+   59.9s  alert    raised   critical station-jam-stops-feeder:A/st-3  "st-3 jam: feeder st-2 stopped"',
      '+   60.0s  outcome  cmjuohs00-1  accepted',
      '+   60.0s  outcome  cmjuohs00-1  done',
    ]);
  });
});
