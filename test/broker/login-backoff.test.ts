// Password guessing: the backoff tracker with an injected clock (pure), the dummy-hash work for
// unknown users (counted verifications, not timing), and the backoff in a real broker.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'node:net';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStore } from '../../broker/account-store.js';
import { addAccount, type BrokerConfig, type Role } from '../../broker/index.js';
import { LoginBackoff } from '../../broker/login-backoff.js';
import { addressKey, LoginGuard, type Admission, type LoginAttempt } from '../../broker/login-guard.js';
import { sleep, waitFor, withTimeout } from '../../lib/wait.js';
import { startTestBroker, type TestBroker } from '../harness/broker.js';

const dir = mkdtempSync(join(tmpdir(), 'lw-login-backoff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('LoginBackoff', () => {
  const options = { freeFailures: 3, initialMs: 1_000, maxMs: 8_000, maxTracked: 100 };

  it('allows the first failures, then refuses for a window that doubles per failure up to the cap', () => {
    let now = 0;
    const backoff = new LoginBackoff({ ...options, now: () => now });
    for (let n = 0; n < 2; n++) backoff.failure('10.0.0.1');
    expect(backoff.blockedForMs('10.0.0.1')).toBe(0);
    backoff.failure('10.0.0.1'); // the third
    expect(backoff.blockedForMs('10.0.0.1')).toBe(1_000);
    now = 999;
    expect(backoff.blockedForMs('10.0.0.1')).toBe(1);
    now = 1_000;
    expect(backoff.blockedForMs('10.0.0.1')).toBe(0);
    const windows: number[] = [];
    for (let n = 0; n < 5; n++) {
      backoff.failure('10.0.0.1');
      windows.push(backoff.blockedForMs('10.0.0.1'));
    }
    expect(windows).toEqual([2_000, 4_000, 8_000, 8_000, 8_000]);
    expect(backoff.blockedForMs('10.0.0.2')).toBe(0); // others are not affected
  });

  it('forgets a key on success', () => {
    let now = 0;
    const backoff = new LoginBackoff({ ...options, now: () => now });
    for (let n = 0; n < 3; n++) backoff.failure('A/conv-1');
    expect(backoff.blockedForMs('A/conv-1')).toBeGreaterThan(0);
    backoff.success('A/conv-1');
    expect(backoff.blockedForMs('A/conv-1')).toBe(0);
    expect(backoff.size).toBe(0);
    now += 1;
    backoff.failure('A/conv-1'); // counting starts afresh
    expect(backoff.blockedForMs('A/conv-1')).toBe(0);
  });

  it('keeps at most maxTracked keys, and forgets keys that stayed quiet for maxMs after their window', () => {
    let now = 0;
    const backoff = new LoginBackoff({ ...options, maxTracked: 10, now: () => now });
    for (let n = 0; n < 1_000; n++) backoff.failure(`10.1.${Math.floor(n / 256)}.${n % 256}`);
    expect(backoff.size).toBe(10);
    for (let n = 0; n < 3; n++) backoff.failure('10.9.9.9');
    expect(backoff.size).toBe(10);
    expect(backoff.blockedForMs('10.9.9.9')).toBe(1_000); // the newest is kept
    now += 1_000 + options.maxMs;
    backoff.failure('10.9.9.8'); // any update sweeps what expired
    expect(backoff.size).toBe(1);
  });

  it('counts checks in flight: at most freeFailures run at once, and after a window only one', () => {
    let now = 0;
    const backoff = new LoginBackoff({ ...options, now: () => now });
    const admitted: number[] = [];
    for (let n = 0; n < 10; n++) {
      if (!backoff.admits('10.0.0.1')) continue;
      backoff.begin('10.0.0.1');
      admitted.push(n);
    }
    expect(admitted).toEqual([0, 1, 2]); // nothing has failed yet, but three checks in flight could
    backoff.failure('10.0.0.1');
    backoff.failure('10.0.0.1');
    expect(backoff.admits('10.0.0.1')).toBe(false); // one still in flight: it would be the third failure
    backoff.failure('10.0.0.1');
    expect(backoff.blockedForMs('10.0.0.1')).toBe(1_000);
    now = 1_000;
    expect(backoff.admits('10.0.0.1')).toBe(true);
    backoff.begin('10.0.0.1');
    expect(backoff.admits('10.0.0.1')).toBe(false); // after a window: one at a time
    backoff.abandon('10.0.0.1'); // ended without a verdict: nothing counted
    expect(backoff.admits('10.0.0.1')).toBe(true);
    expect(backoff.blockedForMs('10.0.0.1')).toBe(0);
  });

  it('beyond maxTracked forgets keys that are not refusing before those that are', () => {
    const backoff = new LoginBackoff({ ...options, maxTracked: 10, now: () => 0 });
    for (let n = 0; n < 3; n++) backoff.failure('victim');
    expect(backoff.blockedForMs('victim')).toBe(1_000);
    for (let n = 0; n < 1_000; n++) backoff.failure(`flood-${n}`); // a flood of new keys (addresses), each failing once, all newer than the victim
    expect(backoff.size).toBe(10);
    expect(backoff.blockedForMs('victim')).toBeGreaterThan(0);
    expect(backoff.admits('victim')).toBe(false);
  });
});

describe('LoginGuard', () => {
  const options = { freeFailures: 3, initialMs: 1_000, maxMs: 8_000, maxTracked: 100, addressFreeFailures: 10, knownAddressMs: 60_000 };
  const attemptOf = (admission: Admission): LoginAttempt => {
    if (!admission.admitted) throw new Error(`refused (${admission.heldBackBy}), expected admitted`);
    return admission.attempt;
  };
  const fail = (guard: LoginGuard, address: string, username: string): void => guard.failed(attemptOf(guard.admit(address, username)));
  const pass = (guard: LoginGuard, address: string, username: string): void => guard.passed(attemptOf(guard.admit(address, username)));

  it('one misconfigured client does not hold back other usernames at its address', () => {
    const guard = new LoginGuard({ ...options, now: () => 0 });
    for (let n = 0; n < 3; n++) fail(guard, '127.0.0.1', 'A/misconfigured-1');
    expect(guard.admit('127.0.0.1', 'A/misconfigured-1')).toMatchObject({ admitted: false, heldBackBy: 'address and username' });
    expect(guard.admit('127.0.0.1', 'hist-1').admitted).toBe(true);
  });

  it('spraying usernames from one address meets the address ceiling', () => {
    const guard = new LoginGuard({ ...options, now: () => 0 });
    for (let n = 0; n < 10; n++) fail(guard, '10.0.0.9', `A/sprayed-${n}`);
    expect(guard.admit('10.0.0.9', 'A/sprayed-99')).toMatchObject({ admitted: false, heldBackBy: 'address', retryInMs: 1_000 });
    expect(guard.admit('10.0.0.8', 'A/sprayed-99').admitted).toBe(true); // another address is not held back
  });

  it('many honest accounts logging in at the same moment from one address are all checked (the address ceiling counts failures, not checks in flight)', () => {
    const guard = new LoginGuard({ ...options, now: () => 0 });
    // 200 simulated devices behind one address, all connecting at once after a broker restart.
    const admissions = Array.from({ length: 200 }, (_, n) => guard.admit('10.0.0.5', `A/dev-${n}`));
    expect(admissions.filter((admission) => admission.admitted)).toHaveLength(200);
  });

  it('a success clears only its own address and username: owning one account does not reset the guesses at another', () => {
    const guard = new LoginGuard({ ...options, now: () => 0 });
    for (let n = 0; n < 3; n++) fail(guard, '10.0.0.7', 'A/victim-1');
    pass(guard, '10.0.0.7', 'A/owned-1');
    expect(guard.admit('10.0.0.7', 'A/victim-1')).toMatchObject({ admitted: false, heldBackBy: 'address and username' });
    for (let n = 0; n < 7; n++) fail(guard, '10.0.0.7', `A/other-${n}`); // 10 failures at the address in all, a success among them
    expect(guard.admit('10.0.0.7', 'A/another-1')).toMatchObject({ admitted: false, heldBackBy: 'address' });
  });

  it('an address the account logged in from recently is not held back by the account or address backoff', () => {
    const guard = new LoginGuard({ ...options, now: () => 0 });
    pass(guard, '10.0.0.1', 'historian');
    for (let n = 0; n < 3; n++) fail(guard, '10.0.0.66', 'historian'); // an outsider guesses the service's password
    expect(guard.admit('10.0.0.66', 'historian').admitted).toBe(false);
    expect(guard.admit('10.0.0.2', 'historian')).toMatchObject({ admitted: false, heldBackBy: 'account' }); // a new address: held back
    const attempt = attemptOf(guard.admit('10.0.0.1', 'historian')); // the service's usual address: let through
    guard.passed(attempt);
    for (let n = 0; n < 10; n++) fail(guard, '10.0.0.1', `A/sprayed-${n}`); // its address reaches the ceiling
    expect(guard.admit('10.0.0.1', 'A/sprayed-99')).toMatchObject({ admitted: false, heldBackBy: 'address' });
    expect(guard.admit('10.0.0.1', 'historian').admitted).toBe(true); // still let through
  });

  it('knows an address for knownAddressMs after the last login or disconnect', () => {
    let now = 0;
    const guard = new LoginGuard({ ...options, maxMs: 600_000, initialMs: 600_000, now: () => now });
    pass(guard, '10.0.0.1', 'rules');
    for (let n = 0; n < 3; n++) fail(guard, '10.0.0.66', 'rules');
    now = 59_999;
    expect(guard.admit('10.0.0.1', 'rules').admitted).toBe(true);
    guard.abandoned(attemptOf({ admitted: true, attempt: { pair: '10.0.0.1 rules', account: 'rules', address: '10.0.0.1' } }));
    now = 60_000;
    expect(guard.admit('10.0.0.1', 'rules')).toMatchObject({ admitted: false, heldBackBy: 'account' });
    guard.seen('10.0.0.1', 'rules'); // it was connected until now
    expect(guard.admit('10.0.0.1', 'rules').admitted).toBe(true);
  });

  it('groups IPv6 addresses by /64, and IPv4-mapped ones as IPv4', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:DB8:1:2:ffff:ffff:ffff:fffe')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('10.1.2.3')).toBe('10.1.2.3');
    const guard = new LoginGuard({ ...options, now: () => 0 });
    for (let n = 0; n < 3; n++) fail(guard, `2001:db8:1:2::${n + 1}`, 'A/conv-1'); // a new address of the /64 each time
    expect(guard.admit('2001:db8:1:2:dead:beef:0:1', 'A/conv-1')).toMatchObject({ admitted: false, heldBackBy: 'address and username' });
  });
});

describe('AccountStore', () => {
  it('runs scrypt for an unknown user as for a known one with a wrong password', async () => {
    const file = join(dir, 'devices.json');
    await addAccount(file, { username: 'A/conv-1', password: 'conv-1-secret', role: 'device' });
    const store = new AccountStore(file);
    await store.load();
    expect(store.verifications).toBe(0);
    expect(await store.verify('A/conv-1', 'wrong-password-1')).toBeUndefined();
    expect(store.verifications).toBe(1);
    expect(await store.verify('A/nobody', 'wrong-password-1')).toBeUndefined();
    expect(store.verifications).toBe(2);
    expect(await store.verify('A/conv-1', 'conv-1-secret')).toBeDefined();
    expect(store.verifications).toBe(3);
    expect(await store.verify('A/conv-1', 'conv-1-secret')).toBeDefined(); // remembered: no scrypt
    expect(store.verifications).toBe(3);
  });
});

/**
 * CONNACK return code of one real MQTT.js CONNECT (0: accepted) from `localAddress` (127.0.0.0/8
 * is all loopback, so each test can be "another host" without interfering with the others).
 */
async function connectFrom(tb: TestBroker, username: string, password: string, localAddress: string): Promise<{ code: number; client: mqtt.MqttClient }> {
  const client = new mqtt.MqttClient(() => createConnection({ host: '127.0.0.1', port: tb.broker.ports.mqtt, localAddress }), { username, password, clientId: username, reconnectPeriod: 0, connectTimeout: 5000 });
  try {
    const code = await withTimeout(
      new Promise<number>((resolve) => {
        client.once('connect', () => resolve(0));
        client.once('error', (err) => resolve((err as { code?: number }).code ?? -1));
      }),
      10_000,
      `the CONNACK for ${username} from ${localAddress}`,
    );
    return { code, client };
  } catch (err) {
    await client.endAsync(true);
    throw err;
  }
}

async function connackCode(tb: TestBroker, username: string, password: string, localAddress = '127.0.0.1'): Promise<number> {
  const { code, client } = await connectFrom(tb, username, password, localAddress);
  await client.endAsync(true);
  return code;
}

/** A real broker for the enclosing describe, with these backoff options and accounts. */
function brokerFor(loginBackoff: BrokerConfig['loginBackoff'], accounts: [username: string, password: string, role: Role][]) {
  let tb: TestBroker | undefined;
  beforeAll(async () => {
    tb = await startTestBroker({ wsPort: null, loginBackoff });
    for (const [username, password, role] of accounts) await tb.addAccount(username, password, role);
  });
  afterAll(async () => {
    await tb?.stop();
  });
  const started = (): TestBroker => tb ?? expect.fail('the test broker did not start');
  return {
    code: (username: string, password: string, localAddress?: string): Promise<number> => connackCode(started(), username, password, localAddress),
    connect: (username: string, password: string, localAddress: string) => connectFrom(started(), username, password, localAddress),
    loginBackoffRejects: (): number => started().broker.stats().rejects.login_backoff,
    /** scrypt runs so far. */
    passwordChecks: (): number => started().broker.counters().password_checks ?? expect.fail('no password_checks counter'),
  };
}

describe('login backoff in the broker', () => {
  const { code, loginBackoffRejects, passwordChecks } = brokerFor({ freeFailures: 3, initialMs: 400, maxMs: 400, maxTracked: 100, addressFreeFailures: 50, knownAddressMs: 60_000 }, [
    ['A/guessed-1', 'guessed-secret-1', 'device'],
    ['A/bystander-1', 'bystander-secret-1', 'device'],
  ]);

  it('after 3 wrong passwords refuses even the right one with CONNACK 5 until the window passes; another account at the address is not affected', async () => {
    for (let n = 0; n < 3; n++) expect(await code('A/guessed-1', `wrong-guess-${n}-x`)).toBe(4);
    const before = loginBackoffRejects();
    const checks = passwordChecks();
    expect(await code('A/guessed-1', 'guessed-secret-1')).toBe(5);
    expect(loginBackoffRejects() - before).toBe(1);
    expect(passwordChecks()).toBe(checks); // refused without running scrypt
    expect(await code('A/bystander-1', 'bystander-secret-1')).toBe(0); // same address, its own key
    await waitFor(async () => (await code('A/guessed-1', 'guessed-secret-1')) === 0, 10_000, 'the right password to be accepted once the window is over');
  });
});

// Windows of a minute: nothing here waits for one to pass, and none passes by accident on a slow run.
describe('login backoff keys in the broker', () => {
  const { code, passwordChecks } = brokerFor({ freeFailures: 3, initialMs: 60_000, maxMs: 60_000, maxTracked: 100, addressFreeFailures: 50, knownAddressMs: 600_000 }, [
    ['A/parallel-1', 'parallel-secret-1', 'device'],
    ['hist-guessed', 'historian-secret-1', 'historian'],
    ['A/misconfigured-1', 'misconfigured-secret-1', 'device'],
    ['rules-neighbour', 'neighbour-secret-1', 'rules'],
  ]);

  it('50 wrong passwords sent at once run no more password checks than 3 sent one after the other', async () => {
    const checks = passwordChecks();
    const codes = await Promise.all(Array.from({ length: 50 }, (_, n) => code('A/parallel-1', `parallel-guess-${n}`, '127.0.0.4')));
    // freeFailures (3) checks may run at once; the rest are refused before scrypt, whatever the order.
    expect(passwordChecks() - checks).toBeLessThanOrEqual(3);
    expect(codes.filter((c) => c === 4)).toHaveLength(3);
    expect(codes.filter((c) => c === 5)).toHaveLength(47);
  });
  it('a service keeps connecting from its usual address while an outsider guesses its password from another', async () => {
    expect(await code('hist-guessed', 'historian-secret-1', '127.0.0.5')).toBe(0);
    const outsider: number[] = [];
    for (let n = 0; n < 8; n++) outsider.push(await code('hist-guessed', `outsider-guess-${n}`, '127.0.0.6'));
    expect(outsider.slice(0, 3)).toEqual([4, 4, 4]);
    expect(outsider.slice(3).every((c) => c === 5)).toBe(true); // the outsider is held back…
    for (let n = 0; n < 3; n++) expect(await code('hist-guessed', 'historian-secret-1', '127.0.0.5')).toBe(0); // …the service is not
    expect(await code('hist-guessed', 'historian-secret-1', '127.0.0.7')).toBe(5); // from an address it never used, the account's block holds
  });

  it('one misconfigured device does not keep other accounts at its address out', async () => {
    const codes: number[] = [];
    for (let n = 0; n < 6; n++) codes.push(await code('A/misconfigured-1', `stale-password-${n}`, '127.0.0.8'));
    expect(codes).toEqual([4, 4, 4, 5, 5, 5]);
    expect(await code('A/misconfigured-1', 'misconfigured-secret-1', '127.0.0.8')).toBe(5);
    expect(await code('rules-neighbour', 'neighbour-secret-1', '127.0.0.8')).toBe(0);
  });
});

describe('known addresses in the broker', () => {
  const knownAddressMs = 2_000;
  const { code, connect } = brokerFor({ freeFailures: 3, initialMs: 60_000, maxMs: 60_000, maxTracked: 100, addressFreeFailures: 50, knownAddressMs }, [['dash-long', 'dashboard-secret-1', 'dashboard']]);

  it('a service connected for longer than knownAddressMs is still known at its address when it reconnects', async () => {
    const { code: first, client } = await connect('dash-long', 'dashboard-secret-1', '127.0.0.9');
    expect(first).toBe(0);
    for (let n = 0; n < 3; n++) expect(await code('dash-long', `outsider-guess-${n}`, '127.0.0.10')).toBe(4);
    expect(await code('dash-long', 'dashboard-secret-1', '127.0.0.11')).toBe(5); // the account is held back
    await sleep(knownAddressMs + 500); // the service's login is now older than knownAddressMs; it is still connected
    await client.endAsync(); // its disconnect counts as "seen at this address now"
    expect(await code('dash-long', 'dashboard-secret-1', '127.0.0.9')).toBe(0);
  });
});
