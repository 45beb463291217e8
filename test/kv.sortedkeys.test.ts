/**
 * The head cache's lazily ordered key set (src/store/sortedkeys.ts) against a plain sorted copy:
 * random keys come and go in batches of every size (so both the splice and the merge ways of
 * settling run), with ordered views and lower bounds asked at random in between.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SortedKeys } from '../src/store/sortedkeys.ts';
import { rng, seedFromEnv } from './helpers/seed.ts';

describe('SortedKeys', () => {
  it('always orders exactly the present keys, in byte order', () => {
    const seed = seedFromEnv();
    const rand = rng(seed);
    const pick = (n: number): number => Math.floor(rand() * n);
    const s = new SortedKeys();
    const present = new Set<string>();
    // latin1 strings over bytes that include 0x00 and 0xff: string order must be byte order.
    const key = (): string => String.fromCharCode(...Array.from({ length: 1 + pick(4) }, () => [0, 0x2f, 0x61, 0x62, 0x7f, 0xff][pick(6)]!));
    const start = [...new Set(Array.from({ length: 300 }, key))].sort();
    s.reset([...start]);
    for (const k of start) present.add(k);
    for (let round = 0; round < 400; round++) {
      const changes = [1, 5, 70, 1500][pick(4)]!;
      for (let i = 0; i < changes; i++) {
        const k = key();
        if (present.has(k)) {
          present.delete(k);
          s.remove(k);
        } else {
          present.add(k);
          s.add(k);
        }
      }
      assert.equal(s.size, present.size, `seed ${seed} round ${round}`);
      if (pick(3) === 0) continue; // let changes pile up across rounds
      const want = [...present].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
      assert.deepEqual([...s.ordered()], want, `seed ${seed} round ${round}`);
      const probe = key();
      assert.equal(s.lowerBound(probe), want.findIndex((k) => k >= probe) === -1 ? want.length : want.findIndex((k) => k >= probe));
    }
  });
});
