// `linewatch ports` — placeholder until its issue lands; it says so instead of pretending to work.
import type { Command } from 'commander';
import { UserError } from '../errors.js';

export function registerPorts(program: Command): void {
  program
    .command('ports')
    .description('(not available yet)')
    .action(() => {
      throw new UserError('`linewatch ports` is not available in this build yet');
    });
}
