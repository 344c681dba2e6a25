// `linewatch ports`: a listing when udevadm is there, a clear how-to when it is not.
import { afterEach, expect, it } from 'vitest';
import { listSerialPorts } from '../../gateway/list-ports.js';

const savedPath = process.env.PATH;
afterEach(() => {
  process.env.PATH = savedPath;
});

it('says that udevadm is missing and how to install it', async () => {
  process.env.PATH = '/nonexistent-for-this-test';
  const listing = await listSerialPorts();
  expect(listing.ports).toEqual([]);
  expect(listing.unavailable).toMatch(/needs `udevadm`.*apt-get install udev/);
});

it('lists ports when udevadm is available', async () => {
  const listing = await listSerialPorts();
  if (listing.unavailable) {
    // This machine has no udevadm: the message must still be the helpful one.
    expect(listing.unavailable).toMatch(/udev/);
    return;
  }
  expect(Array.isArray(listing.ports)).toBe(true);
  for (const p of listing.ports) expect(p.path).toMatch(/^\/dev\//);
});
