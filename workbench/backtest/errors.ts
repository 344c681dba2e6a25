// An error of a backtest the user can fix (InfluxDB unreachable or refusing, a range without
// events, a bad range): cli/main.ts prints it as one line, like a UserError.
export class BacktestError extends Error {
  readonly userFacing = true;
  override name = 'BacktestError';
}
