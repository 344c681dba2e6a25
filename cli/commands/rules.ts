// `linewatch rules` — placeholder until its issue lands; it says so instead of pretending to work.
import type { Command } from 'commander';
import { UserError } from '../errors.js';

export function registerRules(program: Command): void {
  program
    .command('rules')
    .description('(not available yet)')
    .action(() => {
      throw new UserError('`linewatch rules` is not available in this build yet');
    });
}
