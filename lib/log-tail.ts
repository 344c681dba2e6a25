// The last lines of a child's log file, for the error that says why it did not start.
import { readFileSync } from 'node:fs';

/** The last `count` lines of `file` joined with " | ", or "(no log)" when it cannot be read. */
export function logTail(file: string, count = 3): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    return lines.slice(-count).join(' | ');
  } catch {
    return '(no log)';
  }
}
