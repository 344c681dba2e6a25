// A small seeded random generator for property tests, so a failure is reproducible from its seed.

export type Rand = () => number;

/** mulberry32: uniform numbers in [0, 1) from a 32-bit seed. */
export function random(seed: number): Rand {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One of `items`, uniformly. */
export const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;

/** True with probability `p`. */
export const chance = (rand: Rand, p: number): boolean => rand() < p;
