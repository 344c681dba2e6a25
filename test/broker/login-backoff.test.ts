// Password guessing: the backoff tracker with an injected clock (pure), the dummy-hash work for
// unknown users (counted verifications, not timing), and the backoff in a real broker.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStore } from '../../broker/account-store.js';
import { addAccount } from '../../broker/index.js';
import { LoginBackoff } from '../../broker/login-backoff.js';
import { waitFor } from '../../lib/wait.js';
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

describe('login backoff in the broker', () => {
  let tb: TestBroker;
  beforeAll(async () => {
    tb = await startTestBroker({ wsPort: null, loginBackoff: { freeFailures: 3, initialMs: 400, maxMs: 400, maxTracked: 100 } });
    await tb.addAccount('A/guessed-1', 'guessed-secret-1', 'device');
    await tb.addAccount('A/bystander-1', 'bystander-secret-1', 'device');
  });
  afterAll(async () => {
    await tb?.stop();
  });

  async function code(username: string, password: string): Promise<number> {
    try {
      const client = await mqtt.connectAsync(tb.url, { username, password, clientId: username, reconnectPeriod: 0, connectTimeout: 5000 });
      await client.endAsync();
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  }

  it('after 3 wrong passwords refuses even the right one with CONNACK 5 until the window passes', async () => {
    for (let n = 0; n < 3; n++) expect(await code('A/guessed-1', `wrong-guess-${n}-x`)).toBe(4);
    const before = tb.broker.stats().rejects.login_backoff;
    const checks = tb.broker.counters().password_checks;
    expect(await code('A/guessed-1', 'guessed-secret-1')).toBe(5);
    expect(await code('A/bystander-1', 'bystander-secret-1')).toBe(5); // same address
    expect(tb.broker.stats().rejects.login_backoff - before).toBe(2);
    expect(tb.broker.counters().password_checks).toBe(checks); // refused without running scrypt
    await waitFor(async () => (await code('A/guessed-1', 'guessed-secret-1')) === 0, 10_000, 'the right password to be accepted once the window is over');
    expect(await code('A/bystander-1', 'bystander-secret-1')).toBe(0);
  });
});
