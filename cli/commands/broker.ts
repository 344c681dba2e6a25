// `linewatch broker` — placeholder until its issue lands; it says so instead of pretending to work.
import type { Command } from 'commander';
import { UserError } from '../errors.js';

export function registerBroker(program: Command): void {
  program
    .command('broker')
    .description('(not available yet)')
    .action(() => {
      throw new UserError('`linewatch broker` is not available in this build yet');
    });
}
