// A line's event time (contracts/event-clock.ts): the newest device ts seen on the line plus the
// engine time elapsed since, never backwards; engine time for a line not heard from.
import { describe, expect, it } from 'vitest';
import { EventClock } from '../../contracts/event-clock.js';

const HOST = 1_764_000_000_000; // engine time: the host's clock
const DEVICE = Date.UTC(2030, 0, 1); // a line whose devices live in 2030

describe('EventClock', () => {
  it('is engine time on a line no device event was seen on', () => {
    const clock = new EventClock();
    expect(clock.now('A', HOST)).toBe(HOST);
    expect(clock.now('A', HOST + 250)).toBe(HOST + 250);
  });

  it("follows the line's newest device ts and runs on by engine time between events", () => {
    const clock = new EventClock();
    clock.observe('A', DEVICE, HOST);
    expect(clock.now('A', HOST)).toBe(DEVICE);
    expect(clock.now('A', HOST + 40)).toBe(DEVICE + 40);
    // A simulated line ×10: its next message is 1 s of device time later, 100 ms of engine time.
    clock.observe('A', DEVICE + 1000, HOST + 100);
    expect(clock.now('A', HOST + 100)).toBe(DEVICE + 1000);
    expect(clock.now('A', HOST + 150)).toBe(DEVICE + 1050);
    // Another line keeps its own time.
    expect(clock.now('B', HOST + 150)).toBe(HOST + 150);
  });

  it('never goes backwards: an older or lagging ts does not move it, an engine clock stepping back holds it', () => {
    const clock = new EventClock();
    clock.observe('A', DEVICE, HOST);
    expect(clock.now('A', HOST + 500)).toBe(DEVICE + 500);
    clock.observe('A', DEVICE + 200, HOST + 500); // newer than the newest, behind the line's time
    expect(clock.now('A', HOST + 500)).toBe(DEVICE + 500);
    expect(clock.now('A', HOST + 600)).toBe(DEVICE + 600);
    clock.observe('A', DEVICE - 60_000, HOST + 600); // a backfill
    expect(clock.now('A', HOST + 600)).toBe(DEVICE + 600);
    expect(clock.now('A', HOST + 100)).toBe(DEVICE + 600); // the engine clock stepped back
    expect(clock.now('A', HOST + 700)).toBe(DEVICE + 700);
  });

  it("takes a line's first device event over engine time, keeping what was given as the floor", () => {
    const ahead = new EventClock();
    expect(ahead.now('A', HOST)).toBe(HOST);
    ahead.observe('A', DEVICE, HOST + 10);
    expect(ahead.now('A', HOST + 10)).toBe(DEVICE);

    const behind = new EventClock();
    expect(behind.now('A', HOST)).toBe(HOST);
    behind.observe('A', HOST - 3000, HOST); // devices 3 s behind the host
    expect(behind.now('A', HOST + 1000)).toBe(HOST); // held at what was given
    expect(behind.now('A', HOST + 4000)).toBe(HOST + 1000); // the devices' time once past it
  });

  it('keeps at most maxLines lines: a line beyond them is at engine time and is counted', () => {
    const clock = new EventClock(2);
    clock.observe('A', 5_000, 100);
    clock.observe('B', 7_000, 100);
    clock.observe('C', 9_000, 100);
    expect(clock.overflow).toBe(1);
    expect(clock.now('C', 150)).toBe(150);
    expect(clock.now('A', 150)).toBe(5_050);
  });
});
