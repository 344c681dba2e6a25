// Where in a rule file something is: maps a path such as `rules.2.actions.0.command.action` to the
// line of that node in the YAML text, and turns zod issues into load errors at those lines (an
// unknown key at the line of the key itself, one error per key).
import { isMap, isScalar, type Document, type LineCounter } from 'yaml';
import type { z } from 'zod';

export interface LoadError {
  file: string;
  line?: number;
  ruleId?: string;
  message: string;
}

export function formatLoadError(e: LoadError): string {
  return `${e.file}${e.line ? `:${e.line}` : ''}${e.ruleId ? ` [${e.ruleId}]` : ''}: ${e.message}`;
}

export type FieldPath = readonly (string | number)[];

interface Ranged {
  range?: [number, number, number];
}

export class FileLocator {
  constructor(
    /** The file's name as errors print it (its basename). */
    readonly file: string,
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
  ) {}

  /** Line of the node at `path`; a path that does not exist (a missing key) points at its nearest parent that does. */
  lineOf(path: FieldPath): number | undefined {
    for (let n = path.length; n >= 0; n--) {
      const node = this.doc.getIn(path.slice(0, n), true) as Ranged | undefined;
      if (node && typeof node === 'object' && node.range) return this.lineCounter.linePos(node.range[0]).line;
    }
    return undefined;
  }

  /** Line where `key` is written in the map at `path` (where an unknown key is), else the map's line. */
  lineOfKey(path: FieldPath, key: string): number | undefined {
    const map = this.doc.getIn(path, true);
    if (isMap(map)) {
      const pair = map.items.find((item) => isScalar(item.key) && String(item.key.value) === key);
      const range = (pair?.key as Ranged | undefined)?.range;
      if (range) return this.lineCounter.linePos(range[0]).line;
    }
    return this.lineOf(path);
  }

  /** One load error per zod issue of a value found at `prefix` in the file. */
  issues(error: z.ZodError, prefix: FieldPath, ruleId?: string): LoadError[] {
    return error.issues.flatMap((issue) => {
      const path = [...prefix, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => ({ file: this.file, line: this.lineOfKey(path, key), ruleId, message: `${[...path, key].join('.')}: ${issue.message}` }));
      }
      return [{ file: this.file, line: this.lineOf(path), ruleId, message: `${path.join('.') || '(file)'}: ${issue.message}` }];
    });
  }
}
