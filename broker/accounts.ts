// The devices file: who may connect, with which role. Passwords are stored only as salted
// scrypt hashes; the file is written atomically (temp file + rename) with mode 0600.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { isValidId } from '../contracts/topics.js';

export const ROLES = ['device', 'gateway', 'rules', 'historian', 'oee', 'dashboard', 'sparkplug', 'sparkplug-edge', 'admin'] as const;
export type Role = (typeof ROLES)[number];

// scrypt cost: N=2^14, r=8, p=1 (the interactive-login parameters); 32-byte key, 16-byte salt.
const SCRYPT: ScryptOptions = { N: 16384, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_BYTES = 32;

const accountSchema = z.strictObject({
  role: z.enum(ROLES),
  salt: z.string().describe('base64'),
  hash: z.string().describe('base64 scrypt(password, salt)'),
  created: z.string(),
});
const fileSchema = z.strictObject({
  version: z.literal(1),
  accounts: z.record(z.string(), accountSchema),
});
export type Account = z.infer<typeof accountSchema>;
type DevicesFile = z.infer<typeof fileSchema>;

export interface AccountSummary {
  username: string;
  role: Role;
  created: string;
}

function scrypt(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, KEY_BYTES, SCRYPT, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Reads and validates the devices file; a missing file is an empty one. */
export function readAccounts(file: string): DevicesFile {
  if (!existsSync(file)) return { version: 1, accounts: {} };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`devices file ${file} is not valid JSON (${(err as Error).message}); fix it or remove it and add the accounts again`, { cause: err });
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`devices file ${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}; manage it with \`linewatch devices\``);
  }
  // Client ids are bound to usernames (contracts/client-id.ts), which relies on the username rules.
  for (const [username, account] of Object.entries(parsed.data.accounts)) {
    const problem = usernameProblem(username, account.role);
    if (problem) throw new Error(`devices file ${file}: accounts.${username}: ${problem}; delete that entry from the file and add the account again with \`linewatch devices add\``);
  }
  return parsed.data;
}

function writeAccounts(file: string, data: DevicesFile): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600); // in case a umask widened it
  renameSync(tmp, file);
}

/** Why a username does not fit a role, or undefined if it does. */
export function usernameProblem(username: string, role: Role): string | undefined {
  if (role === 'device') {
    const parts = username.split('/');
    if (parts.length !== 2 || !parts.every(isValidId)) {
      return `a device's username is LINE/DEVICE (e.g. A/conv-1; letters, digits, '-' and '_'), not "${username}"`;
    }
    return undefined;
  }
  if (role === 'sparkplug-edge') {
    const parts = username.split('/');
    if (parts.length !== 2 || !parts.every(isValidId)) {
      return `a Sparkplug edge node's username is GROUP/EDGE (its group and edge node ids, e.g. A/edge-1; letters, digits, '-' and '_'), not "${username}"`;
    }
    return undefined;
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(username)) {
    return `a service username is 1–64 letters, digits, '.', '-' or '_', not "${username}"`;
  }
  return undefined;
}

/** The shortest password an account may have. */
export const MIN_PASSWORD_LENGTH = 12;
const MIN_DISTINCT_CHARACTERS = 6;
const CHARACTER_CLASSES = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/];

/** Why a password is too weak for an account, or undefined if it is strong enough. */
export function passwordProblem(password: string): string | undefined {
  const characters = [...password];
  if (characters.length < MIN_PASSWORD_LENGTH) return `the password must have at least ${MIN_PASSWORD_LENGTH} characters`;
  if (CHARACTER_CLASSES.filter((characterClass) => characterClass.test(password)).length < 2) return 'the password must mix at least two kinds of characters (lower case, upper case, digits, others)';
  if (new Set(characters).size < MIN_DISTINCT_CHARACTERS) return `the password must have at least ${MIN_DISTINCT_CHARACTERS} different characters`;
  if (/^(.+)\1+$/su.test(password)) return 'the password must not be one part repeated (like abc123abc123)';
  const steps = characters.slice(1).map((character, index) => character.codePointAt(0)! - characters[index]!.codePointAt(0)!);
  if (steps.every((step) => step === 1) || steps.every((step) => step === -1)) return 'the password must not be a sequence (like abcdef… or 987654…)';
  return undefined;
}

/** A random password (24 characters of base64url) that passes passwordProblem. */
export function generatePassword(): string {
  for (;;) {
    const password = randomBytes(18).toString('base64url');
    if (!passwordProblem(password)) return password;
  }
}

export interface NewAccount {
  username: string;
  password: string;
  role: Role;
}

async function hashAccount({ username, password, role }: NewAccount): Promise<Account> {
  if (!(ROLES as readonly string[]).includes(role)) throw new Error(`unknown role "${role}"; use one of ${ROLES.join(', ')}`);
  const problem = usernameProblem(username, role);
  if (problem) throw new Error(problem);
  const weak = passwordProblem(password);
  if (weak) throw new Error(weak);
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt);
  return { role, salt: salt.toString('base64'), hash: hash.toString('base64'), created: new Date().toISOString() };
}

/** Adds or replaces one account. */
export async function addAccount(file: string, account: NewAccount): Promise<void> {
  await addAccounts(file, [account]);
}

/** Adds or replaces several accounts with one write (hashes run in parallel on libuv's pool). */
export async function addAccounts(file: string, accounts: NewAccount[]): Promise<void> {
  const hashed = await Promise.all(accounts.map(hashAccount));
  // Read after hashing so the read-modify-write window is as small as possible.
  const data = readAccounts(file);
  accounts.forEach((account, index) => (data.accounts[account.username] = hashed[index]!));
  writeAccounts(file, data);
}

/** Returns false if there was no such account. */
export function removeAccount(file: string, username: string): boolean {
  const data = readAccounts(file);
  if (!(username in data.accounts)) return false;
  delete data.accounts[username];
  writeAccounts(file, data);
  return true;
}

export function listAccounts(file: string): AccountSummary[] {
  const data = readAccounts(file);
  return Object.entries(data.accounts)
    .map(([username, account]) => ({ username, role: account.role, created: account.created }))
    .sort((first, second) => first.username.localeCompare(second.username));
}

/** Constant-time check of `password` against the stored salted hash. */
export async function verifyPassword(account: Account, password: string): Promise<boolean> {
  const expected = Buffer.from(account.hash, 'base64');
  const actual = await scrypt(password, Buffer.from(account.salt, 'base64'));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
