// Start-up check that scripts/patch-aedes.js (run by `npm install`) is in place: without it a
// QoS 1 publisher gets its PUBACK before the message reaches any subscriber, and the broker
// would break its promise silently. See docs/broker.md#puback-after-publish.
import { readFileSync } from 'node:fs';
import { aedesFile } from './aedes-package.js';

const MARKER = '/* linewatch: PUBACK after publish */';

export function assertAedesPatched(): void {
  const handler = aedesFile('lib/handlers/publish.js');
  if (!readFileSync(handler, 'utf8').includes(MARKER)) {
    throw new Error(`${handler} is not patched to send PUBACK after the publish; run \`npm install\` (its postinstall runs scripts/patch-aedes.js)`);
  }
}
