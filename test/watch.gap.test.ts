/**
 * A feed batch that does not follow on from the revision the hub delivered last never reaches a
 * watcher as a hole or a duplicate. The gap is real: the feed's read path (test-only fault hook)
 * reads kv_log from a later or an earlier revision than it should, on a real database, with the
 * writes coming from a second instance so that every revision reaches the watchers' instance
 * through that read path.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { startPair, type ServerPair } from './helpers/server.ts';
import { RawWatch, type WResp } from './helpers/watch.ts';
import { setReadFaultForTests } from '../src/watch/feed.ts';
import type { WatchComponent } from '../src/watch/index.ts';

const B = (s: string): Buffer => Buffer.from(s);
/** pgetcd's reason (docs/design.md, Watch). */
const MSG_FEED_GAP = 'etcdserver: watch missed revisions on the server that cannot be read back; watch again from the last revision received';
const WAIT = 10_000;

/** Arms a fault for the next read only: it waits for `ready`, then reads from shift(after). */
function once(ready: Promise<unknown>, shift: (after: number) => number): Promise<number> {
  return new Promise((seen) => {
    setReadFaultForTests(async (after) => {
      setReadFaultForTests(undefined);
      seen(after);
      await ready;
      return shift(after);
    });
  });
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

describe('watch feed gaps and overlaps', () => {
  let pair: ServerPair;
  let w: RawWatch;
  const put = async (k: string): Promise<number> => Number((await pair.rawB.call('KV', 'Put', { key: B(k), value: B('v') })).header.revision);
  const hubStats = () => (pair.a.app.components[0] as WatchComponent).stats().hub;
  const eventsUntil = async (rev: number): Promise<Array<[string, number]>> => {
    const got: Array<[string, number]> = [];
    while (got.length === 0 || got[got.length - 1]![1] < rev) {
      const r: WResp = await w.next(WAIT);
      assert.equal(r.canceled, false, `unexpected cancel: ${r.cancel_reason}`);
      for (const e of r.events) got.push([e.kv.key.toString(), Number(e.kv.mod_revision)]);
    }
    return got;
  };
  before(async () => { pair = await startPair(); });
  afterEach(() => {
    setReadFaultForTests(undefined);
    w?.close();
  });
  after(() => pair?.stop());

  it('revisions the feed skipped are read back and delivered in order before the rest', async () => {
    w = new RawWatch(pair.rawA);
    await w.watch({ key: B('g1/'), range_end: B('g10') });
    const ready = deferred();
    const seen = once(ready.promise, (after) => after + 2);
    const r1 = await put('g1/a');
    const r2 = await put('g1/b');
    const r3 = await put('g1/c');
    ready.resolve();
    assert.equal(await seen, r1 - 1);
    assert.deepEqual(await eventsUntil(r3), [['g1/a', r1], ['g1/b', r2], ['g1/c', r3]]);
    assert.equal(hubStats().gapsFilled, 1);
    assert.deepEqual(await w.barrier(WAIT), [], 'nothing more, nothing twice');
  });

  it('revisions already delivered are not delivered again', async () => {
    w = new RawWatch(pair.rawA);
    await w.watch({ key: B('g2/'), range_end: B('g20') });
    const r1 = await put('g2/a');
    assert.deepEqual(await eventsUntil(r1), [['g2/a', r1]]);
    const ready = deferred();
    const seen = once(ready.promise, (after) => after - 1);
    const r2 = await put('g2/a');
    ready.resolve();
    assert.equal(await seen, r1);
    assert.deepEqual(await eventsUntil(r2), [['g2/a', r2]]);
    assert.deepEqual(await w.barrier(WAIT), [], 'nothing more, nothing twice');
  });

  it('a gap that cannot be read back (compacted away) cancels the synced watchers with a reason', async () => {
    w = new RawWatch(pair.rawA);
    await w.watch({ key: B('g3/'), range_end: B('g30') });
    const ready = deferred();
    const seen = once(ready.promise, (after) => after + 2);
    const r1 = await put('g3/a');
    const r2 = await put('g3/a');
    // g3/a@r1 is physically removed: the skipped revisions cannot be read back.
    await pair.rawB.call('KV', 'Compact', { revision: r2, physical: true });
    await put('g3/b');
    ready.resolve();
    assert.equal(await seen, r1 - 1);
    const r: WResp = await w.next(WAIT);
    assert.deepEqual([r.watch_id, r.canceled, r.cancel_reason, r.events.length], ['0', true, MSG_FEED_GAP, 0]);
    // The stream still works: watching again from the last revision received reports the compaction.
    w.create({ key: B('g3/'), range_end: B('g30'), start_revision: r1 - 1 });
    const again = await w.next(WAIT);
    assert.equal(again.created, true);
    const c = await w.next(WAIT);
    assert.deepEqual([c.canceled, Number(c.compact_revision)], [true, r2]);
  });
});
