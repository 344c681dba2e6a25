// `linewatch gateway` — placeholder until its issue lands; it says so instead of pretending to work.
import type { Command } from 'commander';
import { UserError } from '../errors.js';

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('(not available yet)')
    .action(() => {
      throw new UserError('`linewatch gateway` is not available in this build yet');
    });
}
