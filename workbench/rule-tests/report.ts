// The readable report of `linewatch rules test DIR`: ✓/✗ per case, for each failure its first
// mismatch in words and the timeline around it, and the counts.
import { basename } from 'node:path';
import { formatTimeline } from '../scenario-run.js';
import { formatTime } from './expectations.js';
import { passed, type CaseResult, type FileResult } from './run.js';

/** Timeline lines the report shows before and after the line at a failure's time. */
export const CONTEXT_BEFORE = 3;
export const CONTEXT_AFTER = 4;

/** The first mismatch of a failed case in one line: `expected …; got …`, or why the run failed. */
export function firstMismatch(result: CaseResult): string | undefined {
  if (result.error !== undefined) return `the run failed: ${result.error}`;
  const failed = result.verdicts.find((v) => !v.ok);
  return failed ? `expected ${failed.expected}; ${failed.mismatch ?? 'not met'}` : undefined;
}

/** The timeline lines around the first mismatch (a few before the first line at or after its time, a few after). */
export function timelineAround(result: CaseResult): string[] {
  const failed = result.verdicts.find((v) => !v.ok);
  const run = result.run;
  if (!failed || !run) return [];
  if (run.timeline.length === 0) return ['(the timeline is empty: no alert, command or outcome)'];
  const lines = formatTimeline(run.timeline);
  let at = run.timeline.findIndex((e) => e.at >= failed.focusAt);
  if (at < 0) at = run.timeline.length;
  return lines.slice(Math.max(0, at - CONTEXT_BEFORE), at + CONTEXT_AFTER);
}

/** The report of one failed case: its first mismatch, how many expectations failed, the timeline around it. */
export function failureText(result: CaseResult): string[] {
  const mismatch = firstMismatch(result);
  if (mismatch === undefined) return [];
  const failures = result.verdicts.filter((v) => !v.ok).length;
  const more = failures > 1 ? [`${failures} of ${result.verdicts.length} expectations not met`] : [];
  const around = timelineAround(result);
  const failed = result.verdicts.find((v) => !v.ok);
  const heading = failed ? [`timeline around ${formatTime(failed.focusAt)}:`] : [];
  return [mismatch, ...more, ...(around.length > 0 ? [...heading, ...around.map((l) => `  ${l}`)] : [])];
}

export function formatReport(results: readonly FileResult[]): string[] {
  const out: string[] = [];
  let ok = 0;
  let failed = 0;
  for (const file of results) {
    out.push(basename(file.file));
    for (const result of file.cases) {
      if (passed(result)) {
        ok++;
        out.push(`  ✓ ${result.name}`);
      } else {
        failed++;
        out.push(`  ✗ ${result.name}`);
        for (const line of failureText(result)) out.push(`      ${line}`);
      }
    }
  }
  const files = `${results.length} file${results.length === 1 ? '' : 's'}`;
  out.push(`${ok} passed, ${failed} failed (${ok + failed} case${ok + failed === 1 ? '' : 's'} in ${files})`);
  return out;
}
