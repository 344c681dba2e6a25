// `linewatch simulate` — placeholder until its issue lands; it says so instead of pretending to work.
import type { Command } from 'commander';
import { UserError } from '../errors.js';

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description('(not available yet)')
    .action(() => {
      throw new UserError('`linewatch simulate` is not available in this build yet');
    });
}
