/**
 * The head cache's lazily ordered slots (src/store/sortedkeys.ts) against a plain sorted copy:
 * random keys come and go in batches of every size (so both the splice and the merge ways of
 * settling run), a key that comes back gets a new item (as the head cache gives it a new slot),
 * and ordered views and lower bounds are asked at random in between.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SortedKeys } from '../src/store/sortedkeys.ts';
import { rng, seedFromEnv } from './helpers/seed.ts';

describe('SortedKeys', () => {
  it('always orders exactly the present items, in byte order of their keys', () => {
    const seed = seedFromEnv();
    const rand = rng(seed);
    const pick = (n: number): number => Math.floor(rand() * n);
    const s = new SortedKeys<{ k: string }>();
    const present = new Map<string, { k: string }>();
    // latin1 strings over bytes that include 0x00 and 0xff: string order must be byte order.
    const key = (): string => String.fromCharCode(...Array.from({ length: 1 + pick(4) }, () => [0, 0x2f, 0x61, 0x62, 0x7f, 0xff][pick(6)]!));
    const start = [...new Set(Array.from({ length: 300 }, key))].sort();
    s.reset(start.map((k) => ({ k })));
    for (const t of s.ordered()) present.set(t.k, t);
    for (let round = 0; round < 400; round++) {
      const changes = [1, 5, 70, 1500][pick(4)]!;
      for (let i = 0; i < changes; i++) {
        const k = key();
        const had = present.get(k);
        if (had) {
          present.delete(k);
          s.remove(had);
        } else {
          const t = { k };
          present.set(k, t);
          s.add(t);
        }
      }
      assert.equal(s.size, present.size, `seed ${seed} round ${round}`);
      if (pick(3) === 0) continue; // let changes pile up across rounds
      const want = [...present.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
      const got = s.ordered();
      assert.deepEqual(got.map((t) => t.k), want, `seed ${seed} round ${round}`);
      assert.ok(got.every((t) => present.get(t.k) === t), `seed ${seed} round ${round}: an item that is gone is still ordered`);
      const probe = key();
      assert.equal(s.lowerBound(probe), want.findIndex((k) => k >= probe) === -1 ? want.length : want.findIndex((k) => k >= probe));
    }
  });
});
