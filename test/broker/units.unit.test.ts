// The broker's pure pieces: filter coverage for the ACL, and the packet-size scanner.
import { describe, expect, it } from 'vitest';
import { filterCovers, mayPublish, maySubscribe, rolesWithoutGrants, rulesFor } from '../../broker/acl.js';
import { Duplex } from 'node:stream';
import { PacketSizeScanner } from '../../broker/packet-guard.js';
import { batchWrites } from '../../broker/write-batching.js';
import { sleep } from '../../lib/wait.js';
import { connectPacket, publishPacket } from './raw-mqtt.js';
import { ROLES } from '../../broker/accounts.js';
import { roleGrants } from '../../config/services.js';

const TABLE = roleGrants();

describe('ACL', () => {
  it.each([
    ['lw/#', 'lw/+/alerts', true],
    ['lw/#', 'lw/#', true],
    ['lw/#', 'lw', true],
    ['lw/+/+/cmd', 'lw/A/x/cmd', true],
    ['lw/+/+/cmd', 'lw/+/+/cmd', true],
    ['lw/A/x/cmd', 'lw/+/x/cmd', false],
    ['lw/+/+/cmd', 'lw/A/#', false],
    ['lw/+/+/cmd', 'lw/A/x/cmd/ack', false],
    ['#', '$SYS/#', false],
    ['$SYS/#', '$SYS/linewatch/stats', true],
  ])('%s covers %s: %s', (outer, inner, expected) => {
    expect(filterCovers(outer, inner)).toBe(expected);
  });

  it('confines a device to its own topics', () => {
    const rules = rulesFor(TABLE, 'device', 'A/conv-1');
    expect(mayPublish(rules, 'lw/A/conv-1/telemetry')).toBe(true);
    expect(mayPublish(rules, 'lw/A/conv-1/cmd/ack')).toBe(true);
    expect(mayPublish(rules, 'lw/A/conv-1/cmd')).toBe(false);
    expect(mayPublish(rules, 'lw/A/conv-2/telemetry')).toBe(false);
    expect(mayPublish(rules, 'lw/A/alerts')).toBe(false);
    expect(maySubscribe(rules, 'lw/A/conv-1/cmd')).toBe(true);
    expect(maySubscribe(rules, 'lw/A/conv-1/#')).toBe(false);
  });

  it('lets the rules role report command outcomes, and no dashboard (it sends no command) nor device', () => {
    expect(mayPublish(rulesFor(TABLE, 'rules', 'rules-1'), 'lw/A/conv-1/cmd/outcome')).toBe(true);
    expect(mayPublish(rulesFor(TABLE, 'dashboard', 'dash'), 'lw/A/conv-1/cmd/outcome')).toBe(false);
    expect(mayPublish(rulesFor(TABLE, 'device', 'A/conv-1'), 'lw/A/conv-1/cmd/outcome')).toBe(false);
    expect(mayPublish(rulesFor(TABLE, 'gateway', 'gw'), 'lw/A/conv-1/cmd/outcome')).toBe(false);
  });

  it('derives every grant from the declared topics: each role has some, a role without a module has none, a wildcard username gets nothing', () => {
    expect(rolesWithoutGrants(TABLE, ROLES)).toEqual([]);
    expect(rulesFor({}, 'rules', 'rules-1')).toEqual({ publish: [], subscribe: [] });
    // Devices files are written by `devices add`, which refuses such names; a hand-edited one may hold them.
    expect(rulesFor(TABLE, 'device', 'A/+')).toEqual({ publish: [], subscribe: [] });
    expect(rulesFor(TABLE, 'device', '#')).toEqual({ publish: [], subscribe: [] });
    expect(rulesFor(TABLE, 'historian', 'historian')).toEqual({ publish: [], subscribe: ['lw/#'] });
  });

  it('never lets a client publish on $SYS, not even admin', () => {
    expect(mayPublish(rulesFor(TABLE, 'admin', 'ops'), '$SYS/linewatch/stats')).toBe(false);
    expect(mayPublish(rulesFor(TABLE, 'admin', 'ops'), 'anything/else')).toBe(true);
  });
});

describe('PacketSizeScanner', () => {
  it('accepts a stream of packets under the limit, however it is split', () => {
    const stream = Buffer.concat([connectPacket('x'), publishPacket('a/b', Buffer.alloc(300)), publishPacket('a/b', Buffer.alloc(1000))]);
    for (const step of [1, 2, 3, 7, 64, stream.length]) {
      const scanner = new PacketSizeScanner(2048);
      for (let i = 0; i < stream.length; i += step) expect(scanner.scan(stream.subarray(i, i + step))).toEqual({ ok: true });
    }
  });

  it('reports a packet declaring more than the limit at its header, even split inside the length', () => {
    const big = publishPacket('a/b', Buffer.alloc(5000));
    const scanner = new PacketSizeScanner(4096);
    expect(scanner.scan(big.subarray(0, 2))).toEqual({ ok: true }); // type + first length byte (continued)
    expect(scanner.scan(big.subarray(2, 3))).toEqual({ ok: false, reason: 'oversize', declared: big.length });
  });

  it('reports a length that runs past 4 bytes as malformed', () => {
    expect(new PacketSizeScanner(4096).scan(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('batchWrites', () => {
  /** A stream recording how many chunks reach the transport per write call. */
  function recordingStream(): { stream: Duplex; calls: number[] } {
    const calls: number[] = [];
    const stream = new Duplex({
      read() {},
      write(_chunk, _enc, cb) {
        calls.push(1);
        cb();
      },
      writev(chunks, cb) {
        calls.push(chunks.length);
        cb();
      },
    });
    return { stream, calls };
  }

  /** What Aedes + mqtt-packet do: each packet from its own setImmediate, corked until the next tick. */
  async function writeThreePackets(stream: Duplex): Promise<void> {
    for (let i = 0; i < 3; i++) {
      setImmediate(() => {
        stream.cork();
        stream.write(Buffer.from(`packet-${i}`));
        process.nextTick(() => stream.uncork());
      });
    }
    await sleep(20);
  }

  it('without it, every packet is its own write', async () => {
    const { stream, calls } = recordingStream();
    await writeThreePackets(stream);
    expect(calls).toEqual([1, 1, 1]);
  });

  it('with it, the packets of one event-loop turn leave in one write', async () => {
    const { stream, calls } = recordingStream();
    batchWrites(stream);
    await writeThreePackets(stream);
    expect(calls).toEqual([3]);
    stream.write(Buffer.from('later, uncorked'));
    await sleep(5);
    expect(calls).toEqual([3, 1]);
  });
});
