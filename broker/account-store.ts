// The broker's view of the devices file: reloaded when the file changes (so `linewatch devices
// add` takes effect without a restart), with a cache of verified passwords so a reconnect storm
// does not cost one scrypt per CONNECT. An unknown user costs the same scrypt as a wrong
// password (against a dummy hash), so the time of a refusal does not tell which it was.
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { readAccounts, verifyPassword, type Account } from './accounts.js';

/** Checked for unknown users: a random salt and hash no password matches (one in 2^256). */
const DUMMY_ACCOUNT: Account = { role: 'device', salt: randomBytes(16).toString('base64'), hash: randomBytes(32).toString('base64'), created: '' };

export class AccountStore {
  private accounts: Record<string, Account> = {};
  /** inode:mtime:size of the file last read; every save is a rename, so a new inode each time. */
  private loadedVersion = '';
  /** username → sha256(salt ‖ password) of the last password that verified. */
  private readonly verified = new Map<string, string>();
  /** scrypt runs so far (for a known user or the dummy hash). */
  verifications = 0;

  constructor(readonly file: string) {}

  async load(): Promise<void> {
    const version = await stat(this.file).then((s) => `${s.ino}:${s.mtimeMs}:${s.size}`, () => 'missing');
    if (version === this.loadedVersion) return;
    this.accounts = readAccounts(this.file).accounts;
    this.loadedVersion = version;
    this.verified.clear();
  }

  /** The account if the username exists and the password is right, else undefined. */
  async verify(username: string, password: string): Promise<Account | undefined> {
    await this.load();
    const account = Object.hasOwn(this.accounts, username) ? this.accounts[username] : undefined;
    if (!account) {
      this.verifications++;
      await verifyPassword(DUMMY_ACCOUNT, password); // the same work as a wrong password
      return undefined;
    }
    const digest = createHash('sha256').update(account.salt).update(password).digest('hex');
    if (this.verified.get(username) === digest) return account;
    this.verifications++;
    if (!(await verifyPassword(account, password))) return undefined;
    this.verified.set(username, digest);
    return account;
  }
}
