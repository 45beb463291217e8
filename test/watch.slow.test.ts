import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { RawWatch } from './helpers/watch.ts';
import type { WatchComponent } from '../src/watch/index.ts';

const B = (s: string): Buffer => Buffer.from(s);
const LIMIT = 1024 * 1024;
const VALUE = Buffer.alloc(8 * 1024, 'v');

/**
 * A client that stops reading its Watch stream: responses queue up for it (grpc-js write()
 * returns false: backpressure) while every other watcher and every write goes on; past the
 * limit its watchers are canceled with a reason instead of growing memory without bound.
 */
describe('A watcher that does not read', () => {
  let srv: TestServer;
  let raw: Raw;
  let slowRaw: Raw;
  before(async () => {
    srv = await startServer({ watchMaxQueuedBytes: LIMIT });
    raw = rawClients(srv.endpoint);
    slowRaw = rawClients(srv.endpoint); // its own connection, so HTTP/2 flow control is its own
  });
  after(async () => {
    raw.close();
    slowRaw.close();
    await srv.stop();
  });

  const put = async (key: string): Promise<number> => Number((await raw.call('KV', 'Put', { key: B(key), value: VALUE })).header.revision);

  it('stays buffered under the limit, others keep receiving, and it gets everything once it reads again', async () => {
    const slow = new RawWatch(slowRaw);
    const fast = new RawWatch(raw);
    const cs = await slow.watch({ key: B('a/'), range_end: B('a0') });
    const cf = await fast.watch({ key: B('a/'), range_end: B('a0') });
    slow.stream.pause();
    const revs: number[] = [];
    for (let i = 0; i < 60; i++) revs.push(await put(`a/${i}`)); // about 500 KB: under the limit
    const f = await fast.events(cf.watch_id, 60);
    assert.deepEqual(f.events.map((e) => Number(e.kv.mod_revision)), revs);
    slow.stream.resume();
    const s = await slow.events(cs.watch_id, 60);
    assert.deepEqual(s.events.map((e) => Number(e.kv.mod_revision)), revs);
    assert.deepEqual(await slow.barrier(), []);
    slow.close();
    fast.close();
  });

  it('past the limit its watchers are canceled with a reason; other streams are untouched', async () => {
    const stats = () => (srv.app.components[0] as WatchComponent).stats();
    const slow = new RawWatch(slowRaw);
    const fast = new RawWatch(raw);
    const cs = await slow.watch({ key: B('b/'), range_end: B('b0') });
    await slow.watch({ key: B('b/x') });
    const cf = await fast.watch({ key: B('b/'), range_end: B('b0') });
    const synced = stats().syncedWatchers;
    slow.stream.pause();
    const revs: number[] = [];
    for (let i = 0; i < 400; i++) revs.push(await put(`b/${i}`)); // about 3.2 MB
    const f = await fast.events(cf.watch_id, 400);
    assert.deepEqual(f.events.map((e) => Number(e.kv.mod_revision)), revs);
    assert.equal(stats().syncedWatchers, synced - 2, 'the slow stream\'s watchers left the hub');
    slow.stream.resume();
    const got: number[] = [];
    const canceled = new Set<string>();
    while (canceled.size < 2) {
      const r = await slow.next();
      if (r.canceled) {
        // pgetcd's reason (docs/design.md, Watch), written out: the limit is 1 MiB here.
        assert.equal(r.cancel_reason, 'etcdserver: watch stream is too slow: more than 1048576 bytes of responses were waiting to be read; watch again from the last revision received');
        canceled.add(r.watch_id);
      } else {
        got.push(...r.events.map((e) => Number(e.kv.mod_revision)));
      }
    }
    assert.deepEqual([...canceled].sort(), ['0', '1']);
    // What it did receive is a gapless prefix: it can watch again from the next revision.
    assert.deepEqual(got, revs.slice(0, got.length));
    assert.ok(got.length < revs.length);
    const again = await slow.watch({ key: B('b/'), range_end: B('b0'), start_revision: String(revs[got.length]) });
    const rest = await slow.events(again.watch_id, revs.length - got.length);
    assert.deepEqual(rest.events.map((e) => Number(e.kv.mod_revision)), revs.slice(got.length));
    slow.close();
    fast.close();
    void cs;
  });

  it('a catch-up that falls behind a compaction while its stream is not read is canceled with compact_revision', async () => {
    // About 13 MB of history: more than a paused client's buffers, its HTTP/2 windows and the
    // loopback socket buffers can take in (with 3.2 MB, a native connection on a fast machine
    // once took in the whole catch-up before the compaction, and the watcher synced).
    const revs: number[] = [];
    for (let i = 0; i < 1600; i += 16) {
      revs.push(...await Promise.all(Array.from({ length: 16 }, (_, j) => put(`c/${i + j}`))));
    }
    revs.sort((a, b) => a - b);
    const slow = new RawWatch(slowRaw);
    slow.stream.pause();
    const hub = () => (srv.app.components[0] as WatchComponent).stats().hub;
    const steps = () => hub().ringCatchups + hub().dbCatchupReads;
    const before = steps();
    slow.create({ key: B('c/'), range_end: B('c0'), start_revision: String(revs[0]) });
    // The catch-up stops when the stream holds a quarter of the limit; compact past where it is,
    // once it has delivered something (a second step starts only after the first one delivered;
    // compacting before the first would rightly cancel it with nothing sent).
    while (steps() < before + 2) await new Promise((r) => setTimeout(r, 10));
    const last = revs.at(-1)!;
    await raw.call('KV', 'Compact', { revision: String(last) });
    await put('other'); // a read of the log carries the new compact revision to the hub
    slow.stream.resume();
    const created = await slow.next();
    assert.equal(created.created, true);
    const got: number[] = [];
    for (;;) {
      // A stall names where the server stood (the watch component's counters).
      const r = await slow.next().catch((e: Error) => {
        throw new Error(`${e.message}; ${got.length} events so far; server: ${JSON.stringify((srv.app.components[0] as WatchComponent).stats())}`);
      });
      if (r.canceled) {
        assert.equal(r.watch_id, created.watch_id);
        assert.equal(Number(r.compact_revision), last);
        break;
      }
      got.push(...r.events.map((e) => Number(e.kv.mod_revision)));
    }
    console.log(`watch.slow: ${got.length} of ${revs.length} events before the cancel`);
    assert.ok(got.length > 0 && got.length < revs.length, `${got.length} events before the cancel`);
    assert.deepEqual(got, revs.slice(0, got.length));
    slow.close();
  });
});
