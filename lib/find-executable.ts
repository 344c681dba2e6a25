// Finding a program we run as a child (influxd, socat): the first executable file of that name in
// PATH's directories, then in fallback directories a service manager's PATH may lack.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** True when `path` is a regular file this user may execute (a directory is searchable, not a program). */
export function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** PATH's directories in order, then `fallbacks`, each once. */
export function searchPath(fallbacks: readonly string[] = []): string[] {
  return [...new Set([...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...fallbacks])];
}

/** The first `dir/name` that is an executable file, or undefined when none is. */
export function findExecutable(name: string, dirs: readonly string[] = searchPath()): string | undefined {
  return dirs.map((dir) => join(dir, name)).find(isExecutableFile);
}
