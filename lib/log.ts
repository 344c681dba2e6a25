// One pino logger for the whole process; each service takes a child named after itself.
import { pino, type Logger } from 'pino';

export type { Logger };

const level = process.env.LINEWATCH_LOG_LEVEL ?? (process.env.VITEST ? 'silent' : 'info');

export const rootLogger: Logger = pino({ level, base: { app: 'linewatch' } });

export function logger(service: string): Logger {
  return rootLogger.child({ service });
}
