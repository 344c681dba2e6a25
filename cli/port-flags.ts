// Which flag of a command sets each listener's port: an AddressInUse (lib/listen.ts) names the
// config key, and the command turns that into its own flag, so the one line says what to type.
import { AddressInUse } from '../lib/listen.js';

/** Config key of a listener's port → the flag of this command that sets it. */
export type PortFlags = Readonly<Record<string, string>>;

/** An AddressInUse whose setting has a flag here, with a fix naming that flag; anything else unchanged. */
export function namingPortFlag(err: unknown, flags: PortFlags): unknown {
  if (!(err instanceof AddressInUse)) return err;
  const flag = flags[err.target.setting];
  return flag ? err.withFix(`pass ${flag} PORT (0 picks a free one), or set ${err.target.setting} in linewatch.yaml`) : err;
}
