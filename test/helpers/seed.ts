/**
 * Seeded randomness for tests: every random test takes its seed from PGETCD_TEST_SEED (to rerun
 * one) or picks one, and prints it.
 */

/** mulberry32: small, seedable, good enough to pick test inputs. Returns numbers in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seedFromEnv(): number {
  const s = process.env.PGETCD_TEST_SEED;
  return s ? Number(s) : Math.floor(Math.random() * 2 ** 31);
}

/** n pseudo-random bytes from r. */
export function randomBytesFrom(r: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}
