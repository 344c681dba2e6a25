// Accounts for the simulated devices of `linewatch up`: a random password per device, kept in
// <dataDir>/sim-credentials.json (mode 0600) so a restart reuses them, and its salted hash added
// to the broker's devices file. Passwords are never printed.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { addAccount, generatePassword, listAccounts, type Role } from '../../broker/index.js';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Makes sure every `LINE/DEVICE` in `devices` has a device account (or an account of `role`:
 * the Sparkplug host, edge nodes GROUP/EDGE) in `devicesFile` whose password we know, and returns
 * a lookup for the simulator. Returns how many were created.
 */
export async function provisionDeviceAccounts(dataDir: string, devicesFile: string, devices: string[], role: Role = 'device'): Promise<{ lookup: (line: string, device: string) => Credentials | undefined; account: (username: string) => Credentials | undefined; created: number }> {
  const file = join(dataDir, 'sim-credentials.json');
  const known = existsSync(file) ? readKnown(file) : {};
  const existing = new Set(existsSync(devicesFile) ? listAccounts(devicesFile).map((a) => a.username) : []);
  let created = 0;
  for (const username of devices) {
    if (known[username] && existing.has(username)) continue;
    const password = known[username] ?? generatePassword();
    mkdirSync(dirname(devicesFile), { recursive: true });
    await addAccount(devicesFile, { username, password, role });
    known[username] = password;
    created++;
  }
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, JSON.stringify(known, null, 2), { mode: 0o600 });
  chmodSync(file, 0o600);
  const account = (username: string): Credentials | undefined => {
    const password = known[username];
    return password ? { username, password } : undefined;
  };
  return { created, lookup: (line, device) => account(`${line}/${device}`), account };
}

function readKnown(file: string): Record<string, string> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message}); delete it and \`linewatch up\` makes new simulator accounts`, { cause: err });
  }
}
