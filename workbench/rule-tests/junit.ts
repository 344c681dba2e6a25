// Rule test results as JUnit XML for CI (`rules test DIR --reporter junit --output FILE`): a
// testsuite per test file, a testcase per case; a failed expectation is a <failure> (its first
// mismatch as the message, the report's text as the body), a run that threw an <error>.
import { basename } from 'node:path';
import { failureText, firstMismatch } from './report.js';
import { passed, type FileResult } from './run.js';

export function escapeXml(text: string): string {
  return (
    text
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
      // Characters XML 1.0 cannot hold at all.
      // eslint-disable-next-line no-control-regex
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, '')
  );
}

const seconds = (ms: number): string => (ms / 1000).toFixed(3);

export function formatJunit(results: readonly FileResult[]): string {
  const all = results.flatMap((f) => f.cases);
  const count = (cases: typeof all, what: 'failures' | 'errors'): number => cases.filter((c) => !passed(c) && (what === 'errors') === (c.error !== undefined)).length;
  const total = (cases: typeof all): number => cases.reduce((sum, c) => sum + c.elapsedMs, 0);
  const out = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="linewatch rules test" tests="${all.length}" failures="${count(all, 'failures')}" errors="${count(all, 'errors')}" time="${seconds(total(all))}">`];
  for (const file of results) {
    const name = escapeXml(basename(file.file));
    out.push(`  <testsuite name="${name}" tests="${file.cases.length}" failures="${count(file.cases, 'failures')}" errors="${count(file.cases, 'errors')}" time="${seconds(total(file.cases))}">`);
    for (const result of file.cases) {
      const open = `    <testcase name="${escapeXml(result.name)}" classname="${name}" time="${seconds(result.elapsedMs)}"`;
      if (passed(result)) {
        out.push(`${open}/>`);
        continue;
      }
      const tag = result.error !== undefined ? 'error' : 'failure';
      out.push(`${open}>`, `      <${tag} message="${escapeXml(firstMismatch(result) ?? '')}" type="${tag === 'error' ? 'run' : 'expectation'}">${escapeXml(failureText(result).join('\n'))}</${tag}>`, '    </testcase>');
    }
    out.push('  </testsuite>');
  }
  out.push('</testsuites>', '');
  return out.join('\n');
}
