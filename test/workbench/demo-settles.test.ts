// The demo line (the example rules against simulators/scenarios/demo.yaml) returns to its nominal
// speed and strategy once the faults clear — also when the devices run faster than the engine's
// clock, as in `linewatch up --speedup N`.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../simulators/scenario.js';
import { runScenario } from '../../workbench/scenario-run.js';

const EXAMPLES = fileURLToPath(new URL('../../rules/examples', import.meta.url));
const DEMO = fileURLToPath(new URL('../../simulators/scenarios/demo.yaml', import.meta.url));

describe('the demo line after its faults clear', () => {
  // The overheat ends at 630 s. At speedup N each 5 s dwell of the ramp back to 40 takes 5·N s of
  // device time, and the overheat rule's 40 → 15 → 40 cycle is N times faster in engine time: at
  // 10 and 20 the oscillation guard suspends the rule for suspendFor (5 min of engine time, 5·N min
  // of device time), holding the speed; its restore is sent when the suspension ends. Each run goes
  // past that.
  it.each([
    [1, 1_500_000],
    [10, 4_200_000],
    [20, 7_500_000],
  ])('ends at 40 m/min in max-throughput at speedup %i', async (speedup, durationMs) => {
    const result = await runScenario({ dir: EXAMPLES, scenario: loadScenarioFile(DEMO), seed: 1, speedup, durationMs });
    const controller = result.devices['line-ctl']!;
    expect({ speed: controller.values.speedSetpoint, strategy: controller.state?.strategy }).toEqual({ speed: 40, strategy: 'max-throughput' });
    // What the limits delayed was sent, not dropped; only a suspended rule's command is blocked.
    expect(result.counters.outcome_blocked ?? 0).toBe(result.counters.blocked_suspended ?? 0);
  }, 120_000);
});
