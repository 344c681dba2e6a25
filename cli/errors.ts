// An error meant for the person at the terminal: printed as one line, without a stack.
export class UserError extends Error {
  readonly userFacing = true;
  override name = 'UserError';
}
