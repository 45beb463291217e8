/**
 * Paginated lists as kube-apiserver runs them: the first page at the head with a limit, every
 * later page from the last key + "\0" at the first page's revision. Each page's count is the
 * count of its own [key, range_end) at that revision (etcd), also when pgetcd remembers it from
 * the previous page instead of counting, and also when the range changes between pages.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startPair, type ServerPair } from './helpers/server.ts';
import type { Raw } from './helpers/raw.ts';

const B = (s: string): Buffer => Buffer.from(s);
const END = B('/p0');

interface Page { keys: string[]; count: number; more: boolean; rev: number }

async function page(raw: Raw, key: Buffer, revision: number, limit: number): Promise<Page> {
  const r = await raw.call('KV', 'Range', { key, range_end: END, limit, revision });
  return { keys: r.kvs.map((kv: { key: Buffer }) => kv.key.toString()), count: Number(r.count), more: r.more, rev: Number(r.header.revision) };
}

async function list(raw: Raw, limit: number, between?: (i: number) => Promise<void>): Promise<Page[]> {
  const pages: Page[] = [];
  let key = B('/p/');
  let rev = 0;
  for (let i = 0; ; i++) {
    const p = await page(raw, key, rev, limit);
    pages.push(p);
    if (!p.more) return pages;
    rev = rev || p.rev;
    key = Buffer.concat([B(p.keys.at(-1)!), Buffer.from([0])]);
    await between?.(i);
  }
}

describe('paginated lists', () => {
  let pair: ServerPair;
  let rawA: Raw;
  let rawB: Raw;
  before(async () => {
    pair = await startPair();
    ({ rawA, rawB } = pair);
    for (let i = 0; i < 23; i++) await rawA.call('KV', 'Put', { key: B(`/p/${String(i).padStart(2, '0')}`), value: B(`v${i}`) });
  });
  after(() => pair.stop());

  it('every page counts the rest of the range at the first page\'s revision', async () => {
    for (let round = 0; round < 2; round++) {
      const pages = await list(rawA, 5);
      assert.deepEqual(pages.map((p) => p.count), [23, 18, 13, 8, 3]);
      assert.deepEqual(pages.map((p) => p.keys.length), [5, 5, 5, 5, 3]);
      assert.deepEqual(pages.flatMap((p) => p.keys), Array.from({ length: 23 }, (_, i) => `/p/${String(i).padStart(2, '0')}`));
    }
  });

  it('writes into the range between pages change nothing of a list at its revision', async () => {
    let n = 100;
    const pages = await list(rawA, 5, async (i) => {
      await rawA.call('KV', 'Put', { key: B(`/p/${String(i * 5 + 7).padStart(2, '0')}x`), value: B('new') });
      await rawA.call('KV', 'DeleteRange', { key: B(`/p/${String(i * 5 + 8).padStart(2, '0')}`) });
      n++;
    });
    assert.deepEqual(pages.map((p) => p.count), [23, 18, 13, 8, 3]);
    assert.equal(pages.flatMap((p) => p.keys).length, 23);
    // The same pages asked of an instance that remembers nothing are answered the same.
    const rev = pages[0]!.rev;
    let key = B('/p/');
    for (const p of pages) {
      const fresh = await page(rawB, key, rev, 5);
      assert.deepEqual(fresh.keys, p.keys);
      assert.equal(fresh.count, p.count);
      key = Buffer.concat([B(p.keys.at(-1)!), Buffer.from([0])]);
    }
    // And a list at the head now sees the writes.
    const now = await list(rawA, 5);
    // Four keys put, three deleted (/p/23 never existed).
    assert.equal(now.flatMap((p) => p.keys).length, 24);
    assert.equal(now[0]!.count, 24);
    assert.equal(n, 104);
  });
});
