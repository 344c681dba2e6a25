// Which logins may run a password check (docs/broker.md#password-guessing). Three backoffs
// (broker/login-backoff.ts) and one memory of where accounts logged in:
//
// - per (address, username): `freeFailures` failures in a row, then doubling windows; a success
//   clears it. One misconfigured client only holds back itself, not others at its address.
// - per username: the same limits, from any address; a success does not clear it (an attacker
//   who owns one account cannot reset another's count). An (address, username) that logged in
//   successfully within `knownAddressMs` is not held back by it, so an outsider guessing a
//   service's password does not lock the service out on its usual address.
// - per address, across usernames: `addressFreeFailures` failures in a row (a higher ceiling,
//   so spraying many usernames from one address is still slowed); a success does not clear it;
//   known (address, username) pairs are not held back by it either.
//
// An address is the client's IPv4 address, or its IPv6 /64 (one host commonly has a whole /64).

import type { LoginBackoffOptions } from './login-backoff.js';
import { LoginBackoff } from './login-backoff.js';

export interface LoginGuardOptions extends LoginBackoffOptions {
  addressFreeFailures: number;
  knownAddressMs: number;
}

/** What an admitted attempt holds until its check ends. */
export interface LoginAttempt {
  readonly pair: string;
  readonly account: string;
  readonly address: string;
}

export type Admission = { admitted: true; attempt: LoginAttempt } | { admitted: false; retryInMs: number; heldBackBy: 'address and username' | 'account' | 'address' };

/** Usernames are at most 129 characters (LINE/DEVICE); a longer one is nobody's, and may not cost its size in the trackers. */
const MAX_KEY_USERNAME = 256;

export class LoginGuard {
  private readonly pairs: LoginBackoff;
  private readonly accounts: LoginBackoff;
  private readonly addresses: LoginBackoff;
  /** (address, username) → when it last logged in or disconnected, oldest first. */
  private readonly known = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: LoginGuardOptions) {
    this.now = options.now ?? Date.now;
    this.pairs = new LoginBackoff(options);
    this.accounts = new LoginBackoff(options);
    this.addresses = new LoginBackoff({ ...options, freeFailures: options.addressFreeFailures, countInFlight: false });
  }

  /** Keys tracked now, per kind (for tests and bounds). */
  get size(): { pairs: number; accounts: number; addresses: number; known: number } {
    return { pairs: this.pairs.size, accounts: this.accounts.size, addresses: this.addresses.size, known: this.known.size };
  }

  /** Whether a login of `username` from `remoteAddress` may check its password now; if so, end the attempt with passed/failed/abandoned. */
  admit(remoteAddress: string, username: string): Admission {
    const attempt = keysOf(remoteAddress, username);
    const known = this.isKnown(attempt.pair);
    if (!this.pairs.admits(attempt.pair)) return this.refusal(this.pairs, attempt.pair, 'address and username');
    if (!known && !this.accounts.admits(attempt.account)) return this.refusal(this.accounts, attempt.account, 'account');
    if (!known && !this.addresses.admits(attempt.address)) return this.refusal(this.addresses, attempt.address, 'address');
    this.pairs.begin(attempt.pair);
    this.accounts.begin(attempt.account);
    this.addresses.begin(attempt.address);
    return { admitted: true, attempt };
  }

  /** The password was right. */
  passed(attempt: LoginAttempt): void {
    this.pairs.success(attempt.pair);
    this.accounts.abandon(attempt.account);
    this.addresses.abandon(attempt.address);
    this.remember(attempt.pair);
  }

  /** Unknown user or wrong password. */
  failed(attempt: LoginAttempt): void {
    this.pairs.failure(attempt.pair);
    this.accounts.failure(attempt.account);
    this.addresses.failure(attempt.address);
  }

  /** The check could not run (e.g. the devices file is unreadable): nothing learned. */
  abandoned(attempt: LoginAttempt): void {
    this.pairs.abandon(attempt.pair);
    this.accounts.abandon(attempt.account);
    this.addresses.abandon(attempt.address);
  }

  /** An authenticated client of `username` from `remoteAddress` disconnected: it was there until now. */
  seen(remoteAddress: string, username: string): void {
    this.remember(keysOf(remoteAddress, username).pair);
  }

  private refusal(backoff: LoginBackoff, key: string, heldBackBy: 'address and username' | 'account' | 'address'): Admission {
    // In a window: its rest; only held back by checks in flight: the first window (they are about to end).
    return { admitted: false, retryInMs: backoff.blockedForMs(key) || this.options.initialMs, heldBackBy };
  }

  private isKnown(pair: string): boolean {
    const at = this.known.get(pair);
    return at !== undefined && this.now() - at < this.options.knownAddressMs;
  }

  private remember(pair: string): void {
    const now = this.now();
    this.known.delete(pair);
    for (const [key, at] of this.known) {
      if (this.known.size < this.options.maxTracked && now - at < this.options.knownAddressMs) break; // the rest are newer
      this.known.delete(key);
    }
    this.known.set(pair, now);
  }
}

function keysOf(remoteAddress: string, username: string): LoginAttempt {
  const address = addressKey(remoteAddress);
  const account = username.slice(0, MAX_KEY_USERNAME);
  return { pair: `${address} ${account}`, account, address };
}

/** The key of a remote address: IPv4 as it is (also IPv4-mapped IPv6), IPv6 as its /64 prefix. */
export function addressKey(remoteAddress: string): string {
  const address = remoteAddress.replace(/%.*$/, '').toLowerCase(); // a zone (fe80::1%eth0) is not part of the address
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const [head = '', tail] = address.split('::', 2);
  const groupsOf = (part: string): string[] => (part === '' ? [] : part.split(':').flatMap((group) => (group.includes('.') ? ['0', '0'] : [group]))); // an embedded IPv4 is two groups
  const headGroups = groupsOf(head);
  const tailGroups = tail === undefined ? [] : groupsOf(tail);
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(Math.max(0, 8 - headGroups.length - tailGroups.length)).fill('0'), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((group) => (Number.parseInt(group, 16) || 0).toString(16))
    .join(':')}::/64`;
}
