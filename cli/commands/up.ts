// `linewatch up` — placeholder until its issue lands; it says so instead of pretending to work.
import type { Command } from 'commander';
import { UserError } from '../errors.js';

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('(not available yet)')
    .action(() => {
      throw new UserError('`linewatch up` is not available in this build yet');
    });
}
