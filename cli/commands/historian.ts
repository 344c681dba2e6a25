// `linewatch historian` — placeholder until its issue lands; it says so instead of pretending to work.
import type { Command } from 'commander';
import { UserError } from '../errors.js';

export function registerHistorian(program: Command): void {
  program
    .command('historian')
    .description('(not available yet)')
    .action(() => {
      throw new UserError('`linewatch historian` is not available in this build yet');
    });
}
