// The guard of broker/backpressure.ts and packet-guard.ts: their wrappers of `read()` hold only while Aedes pulls a
// client's bytes with read() on 'readable'. A real Aedes over an in-memory stream passes; a
// fake Aedes-like handler that consumes the stream in flowing mode ('data') is refused.
import { Duplex } from 'node:stream';
import { Aedes } from 'aedes';
import { describe, expect, it } from 'vitest';
import { assertReadsPulled } from '../../broker/backpressure.js';

function memoryStream(): Duplex {
  return new Duplex({ read() {}, write(_chunk, _enc, cb) { cb(); } });
}

describe('assertReadsPulled', () => {
  it('accepts the stream as Aedes 1.2.0 handles it (read() on readable)', async () => {
    const aedes = await Aedes.createBroker({ connectTimeout: 60_000 });
    const stream = memoryStream();
    try {
      aedes.handle(stream);
      expect(() => assertReadsPulled(stream)).not.toThrow();
    } finally {
      stream.destroy();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    }
  });

  it('refuses a stream read in flowing mode (a fake Aedes-like handler listening to data)', () => {
    const stream = memoryStream();
    const fakeAedesLikeHandle = (conn: Duplex): void => {
      conn.on('data', () => undefined);
    };
    fakeAedesLikeHandle(stream);
    expect(() => assertReadsPulled(stream)).toThrow(/aedes changed \(it no longer pulls client bytes with read\(\) on 'readable'\): broker\/packet-guard\.ts and broker\/backpressure\.ts must be revisited/);
    stream.destroy();
  });

  it('refuses a stream nobody reads (a fake Aedes-like handler that reads in some other way)', () => {
    const stream = memoryStream();
    expect(() => assertReadsPulled(stream)).toThrow(/broker\/backpressure\.ts must be revisited/);
    stream.destroy();
  });
});
