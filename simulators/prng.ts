// A small seeded PRNG (mulberry32): the same seed gives the same run, on every platform.

export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [min, max). */
  between(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Roughly normal (mean 0, sd 1): the sum of four uniforms, cheap and bounded. */
  noise(): number {
    return (this.next() + this.next() + this.next() + this.next() - 2) * 1.732;
  }

  /** A child generator for one device, so adding a device does not shift the others' streams. */
  fork(salt: number): Prng {
    return new Prng((Math.imul(this.state ^ salt, 0x9e3779b1) + salt) >>> 0);
  }
}
