// Line and device patterns of rules and safety targets: an exact id, or a glob with `*` and `?`.

/** Matches an id against an exact value or a glob; `exact` is set when there is no wildcard (for the index). */
export interface IdMatcher {
  exact?: string;
  test(id: string): boolean;
}

export function globMatcher(pattern: string): IdMatcher {
  if (!/[*?]/.test(pattern)) return { exact: pattern, test: (id) => id === pattern };
  const re = new RegExp(`^${pattern.replace(/[-]/g, '\\-').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return { test: (id) => re.test(id) };
}
