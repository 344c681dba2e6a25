// The message router handed to Aedes (its `mq` option). See docs/broker.md#aedes193.
import mqemitter from 'mqemitter';

export interface SafeMqOptions {
  concurrency: number;
}

export function createSafeMq(options: SafeMqOptions): unknown {
  return mqemitter({ concurrency: options.concurrency, matchEmptyLevels: true });
}
