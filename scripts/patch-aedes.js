#!/usr/bin/env node
// Runs at `npm install`/`npm ci` (postinstall). Aedes 1.2.0 answers a QoS 1 PUBLISH with PUBACK
// *before* it hands the message to its subscribers (lib/handlers/publish.js). A device then
// believes an event is safe while it still sits in the broker's memory, and the historian's
// acknowledge-after-persist (it resolves only once the event is in its spool) cannot reach the
// device. This patch swaps the two steps — publish, then PUBACK — as Aedes already does for
// QoS 2 (store, publish, then PUBREC). It is exact and idempotent: it checks the Aedes version
// and the original text, and fails the install loudly if either changed, so an Aedes upgrade
// cannot silently drop it. broker/aedes-patch.ts checks at start that it is in place.
//
// Usage: node scripts/patch-aedes.js [AEDES_DIR] — AEDES_DIR is the aedes package to patch,
// node_modules/aedes of this project by default (test/scripts/patch-aedes.test.ts gives it a copy).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const root = process.argv[2] ? pathToFileURL(`${process.argv[2].replace(/\/+$/, '')}/`) : new URL('../node_modules/aedes/', import.meta.url);
const MARKER = '/* linewatch: PUBACK after publish */';
const ORIGINAL = `    case 1:
      write(client, new PubAck(packet), function (err) {
        if (err) { return done(err) }
        client.broker.publish(packet, client, done)
      })
      break`;
const PATCHED = `    case 1: ${MARKER}
      client.broker.publish(packet, client, function (err) {
        if (err) { return done(err) }
        write(client, new PubAck(packet), done)
      })
      break`;

if (!existsSync(new URL('package.json', root))) {
  console.error(`linewatch: no aedes package at ${decodeURIComponent(root.pathname).replace(/\/$/, '')} (no package.json there); scripts/patch-aedes.js patches aedes 1.2.0 (see docs/broker.md).`);
  process.exit(1);
}
const version = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).version;
if (version !== '1.2.0') {
  console.error(`linewatch: scripts/patch-aedes.js is written for aedes 1.2.0 but ${version} is installed; review the patch for the new version (see docs/broker.md).`);
  process.exit(1);
}
const file = new URL('lib/handlers/publish.js', root);
const source = readFileSync(file, 'utf8');
if (!source.includes(MARKER)) {
  if (!source.includes(ORIGINAL)) {
    console.error('linewatch: aedes/lib/handlers/publish.js does not contain the QoS 1 block this patch expects; review scripts/patch-aedes.js.');
    process.exit(1);
  }
  writeFileSync(file, source.replace(ORIGINAL, PATCHED));
  console.log('linewatch: patched aedes 1.2.0 to send PUBACK after the publish (docs/broker.md)');
}
