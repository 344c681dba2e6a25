// A local ESLint rule: the import rule of docs/architecture.md ("Folders and the import rule").
// A service folder imports only `contracts/`, `bus/`, `lib/` and itself; `bus/` only `contracts/`
// and `lib/`; `contracts/` only `lib/`; `lib/` nothing of ours. The composition folders (`cli/`,
// `config/`, `workbench/`) and `bench/`, `test/`, `scripts/` may import anything. Relative imports
// are resolved against the file, so `../../lib/x.js` from `dashboard/server/` counts as `lib/`.
import { dirname, relative, resolve, sep } from 'node:path';

const SHARED = ['contracts', 'bus', 'lib'];
const SERVICES = ['broker', 'gateway', 'simulators', 'rules', 'historian', 'dashboard', 'oee', 'sparkplug'];

/** The top folders each top folder may import from, besides itself; undefined: anything. */
export const ALLOWED = {
  lib: [],
  contracts: ['lib'],
  bus: ['contracts', 'lib'],
  ...Object.fromEntries(SERVICES.map((service) => [service, SHARED])),
};

function topFolder(root, file) {
  const rel = relative(root, file);
  if (rel.startsWith('..')) return undefined;
  const parts = rel.split(sep);
  return parts.length > 1 ? parts[0] : undefined;
}

const rule = {
  meta: {
    type: 'problem',
    docs: { description: 'services import only contracts/, bus/, lib/ and their own folder (docs/architecture.md)' },
    schema: [],
    messages: {
      layer: '{{from}}/ may not import {{to}}/ ({{source}}): a service imports only contracts/, bus/, lib/ and its own folder; bus/ only contracts/ and lib/; contracts/ only lib/ (docs/architecture.md, "the import rule"). Move what both need to contracts/ or lib/, or compose them in cli/ or workbench/.',
    },
  },
  create(context) {
    const root = context.cwd;
    const file = context.filename;
    const from = topFolder(root, file);
    const allowed = from === undefined ? undefined : ALLOWED[from];
    if (allowed === undefined) return {};
    const check = (node) => {
      // `typeof import('…')` (TSImportType) holds its path in argument.literal (or argument).
      const source = node.type === 'TSImportType' ? (node.argument?.literal?.value ?? node.argument?.value) : node.source?.value;
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const to = topFolder(root, resolve(dirname(file), source));
      if (to === undefined || to === from || allowed.includes(to)) return;
      context.report({ node, messageId: 'layer', data: { from, to, source } });
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check, ImportExpression: check, TSImportType: check };
  },
};

export default { rules: { 'import-rule': rule } };
