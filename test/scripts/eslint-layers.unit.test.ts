// The import rule's lint check (scripts/eslint-layers.js), run through ESLint's own Linter on
// source text placed at paths inside the repository (nothing is written).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ESLint, Linter } from 'eslint';
import { describe, expect, it } from 'vitest';
import layers from '../../scripts/eslint-layers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function problems(file: string, code: string): string[] {
  const linter = new Linter({ cwd: ROOT });
  const config = [{ files: ['**/*.js'], plugins: { linewatch: layers }, rules: { 'linewatch/import-rule': 'error' as const } }];
  return linter.verify(code, config, { filename: join(ROOT, file) }).map((message) => message.message);
}

describe('the import rule', () => {
  it('refuses a service importing another service, bus/ importing a service, contracts/ importing bus/', () => {
    expect(problems('rules/x.js', "import { LineModel } from '../simulators/model.js';")[0]).toMatch(/^rules\/ may not import simulators\/ \(\.\.\/simulators\/model\.js\)/);
    expect(problems('dashboard/server/x.js', "export { startBroker } from '../../broker/index.js';")[0]).toMatch(/^dashboard\/ may not import broker\//);
    expect(problems('bus/x.js', "import '../historian/index.js';")[0]).toMatch(/^bus\/ may not import historian\//);
    expect(problems('contracts/x.js', "const m = await import('../bus/bus.js');")[0]).toMatch(/^contracts\/ may not import bus\//);
    expect(problems('lib/x.js', "import { topics } from '../contracts/topics.js';")[0]).toMatch(/^lib\/ may not import contracts\//);
  });

  it('lets a service import contracts/, bus/, lib/, itself and packages; composition folders anything', () => {
    expect(problems('dashboard/server/x.js', "import { a } from '../../contracts/topics.js';\nimport { b } from '../../lib/wait.js';\nimport { c } from '../../bus/bus.js';\nimport { d } from '../line-view.js';\nimport mqtt from 'mqtt';")).toEqual([]);
    expect(problems('cli/up/x.js', "import { startBroker } from '../../broker/index.js';\nimport { Historian } from '../../historian/index.js';")).toEqual([]);
    expect(problems('config/x.js', "import { rulesModule } from '../rules/module.js';")).toEqual([]);
  });

  it('is on in the lint step for TypeScript, type-only crossings included (`typeof import(…)`)', async () => {
    const eslint = new ESLint({ cwd: ROOT });
    const code = "export const model: typeof import('../simulators/model.js') | undefined = undefined;\nexport type Line = import('../gateway/config.js').GatewayConfig;\n";
    const [result] = await eslint.lintText(code, { filePath: join(ROOT, 'rules/not-a-file.ts') });
    expect(result?.messages.filter((message) => message.ruleId === 'linewatch/import-rule').map((message) => message.message.slice(0, 40))).toEqual(['rules/ may not import simulators/ (../si', 'rules/ may not import gateway/ (../gatew']);
  });
});
