// `linewatch devices` — placeholder until its issue lands; it says so instead of pretending to work.
import type { Command } from 'commander';
import { UserError } from '../errors.js';

export function registerDevices(program: Command): void {
  program
    .command('devices')
    .description('(not available yet)')
    .action(() => {
      throw new UserError('`linewatch devices` is not available in this build yet');
    });
}
