#!/usr/bin/env node
// Runs at `npm install`/`npm ci` (postinstall), after scripts/patch-aedes.js. mqtt-packet 9.0.2
// calls `debug(...)` 46 times per parsed packet in parser.js and 12 times per written one in
// writeToStream.js. With DEBUG unset each call still costs a call with a rest-arguments array and
// the `enabled` getter of the `debug` package: about 3 % of the broker's busy time at 20k msgs/s
// (bench profile, docs/broker.md#cost-per-message). This patch makes each file's `debug` an empty
// function unless DEBUG enabled that namespace when the module loaded — so `DEBUG=mqtt-packet:*`
// at start still logs, but `debug.enable()` later in the process no longer reaches mqtt-packet.
// Exact and idempotent like patch-aedes.js: it checks the version and the original line, and
// fails the install loudly if either changed.
//
// Usage: node scripts/patch-mqtt-packet.js [MQTT_PACKET_DIR] — node_modules/mqtt-packet of this
// project by default (the copy Aedes and MQTT.js resolve; test/scripts/patch-mqtt-packet.test.ts
// gives it a temporary copy).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const root = process.argv[2] ? pathToFileURL(`${process.argv[2].replace(/\/+$/, '')}/`) : new URL('../node_modules/mqtt-packet/', import.meta.url);
const VERSION = '9.0.2';
const MARKER = '/* linewatch: debug off unless DEBUG names it at start */';
const FILES = { 'parser.js': 'mqtt-packet:parser', 'writeToStream.js': 'mqtt-packet:writeToStream' };

const where = decodeURIComponent(root.pathname).replace(/\/$/, '');
if (!existsSync(new URL('package.json', root))) {
  console.error(`linewatch: no mqtt-packet package at ${where} (no package.json there); scripts/patch-mqtt-packet.js patches mqtt-packet ${VERSION} (see docs/broker.md).`);
  process.exit(1);
}
const version = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).version;
if (version !== VERSION) {
  console.error(`linewatch: scripts/patch-mqtt-packet.js is written for mqtt-packet ${VERSION} but ${version} is installed; review the patch for the new version (see docs/broker.md).`);
  process.exit(1);
}
const patches = [];
for (const [name, namespace] of Object.entries(FILES)) {
  const file = new URL(name, root);
  const source = readFileSync(file, 'utf8');
  if (source.includes(MARKER)) continue;
  const original = `const debug = require('debug')('${namespace}')\n`;
  if (source.split(original).length !== 2) {
    console.error(`linewatch: mqtt-packet/${name} does not contain the line this patch expects (${original.trim()}); review scripts/patch-mqtt-packet.js.`);
    process.exit(1);
  }
  const patched = `const debug = ((log) => log.enabled ? log : function debugOff () {})(require('debug')('${namespace}')) ${MARKER}\n`;
  patches.push({ file, text: source.replace(original, patched) });
}
// Both files checked before either is written: a refusal leaves the package as it was.
for (const { file, text } of patches) writeFileSync(file, text);
if (patches.length > 0) console.log(`linewatch: patched mqtt-packet ${VERSION}: its debug calls are no-ops unless DEBUG enables them at start (docs/broker.md)`);
