// `linewatch ports` — lists serial ports, or says why it cannot.
import type { Command } from 'commander';
import { listSerialPorts } from '../../gateway/list-ports.js';
import { UserError } from '../errors.js';

export function registerPorts(program: Command): void {
  program
    .command('ports')
    .description('list serial ports (needs udevadm on Linux)')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const listing = await listSerialPorts();
      if (listing.unavailable) throw new UserError(listing.unavailable);
      if (flags.json) {
        console.log(JSON.stringify(listing.ports, null, 2));
        return;
      }
      if (listing.ports.length === 0) {
        console.log('no serial ports found (plug a USB serial adapter in, or pass a PTY path to `linewatch gateway --port`)');
        return;
      }
      for (const p of listing.ports) {
        console.log([p.path, p.manufacturer, p.serialNumber && `serial ${p.serialNumber}`, p.vendorId && `${p.vendorId}:${p.productId ?? ''}`].filter(Boolean).join('  '));
      }
    });
}
