// The minimum password strength for accounts, and generated passwords that meet it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addAccount, generatePassword, listAccounts, passwordProblem } from '../../broker/accounts.js';

const dir = mkdtempSync(join(tmpdir(), 'lw-password-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('passwordProblem', () => {
  it.each([
    ['12345678', /at least 12 characters/],
    ['short-pw-1', /at least 12 characters/],
    ['123456789012', /two kinds of characters/],
    ['abcdefghijklmnop', /two kinds of characters/],
    ['aaaaaaaaaaaaaaaa', /two kinds of characters/],
    ['a1a1a1a1a1a1a1', /different characters/],
    ['ab12ab12ab12ab12', /different characters/],
    ['abc123abc123', /one part repeated/],
    ['9876543210/.-,', /sequence/],
  ])('refuses %s', (password, why) => {
    expect(passwordProblem(password)).toMatch(why);
  });

  it.each(['conv-1-secret', 'admin-secret', 'ops-password', 'same-for-all-devices', 'Tr0ub4dor&3x'])('accepts %s', (password) => {
    expect(passwordProblem(password)).toBeUndefined();
  });

  it('holds for generated passwords', () => {
    for (let n = 0; n < 1_000; n++) expect(passwordProblem(generatePassword())).toBeUndefined();
  });

  it('is enforced when an account is added', async () => {
    const file = join(dir, 'devices.json');
    await expect(addAccount(file, { username: 'A/weak-1', password: '12345678', role: 'device' })).rejects.toThrow(/at least 12 characters/);
    expect(listAccounts(file)).toEqual([]);
  });
});
