import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Etcd3, type IKeyValue } from 'etcd3';
import { startServer, type TestServer } from './helpers/server.ts';

/** The `etcd3` npm client's watch API against pgetcd. */
describe('Watch through the etcd3 client', () => {
  let srv: TestServer;
  let etcd: Etcd3;
  before(async () => {
    srv = await startServer();
    etcd = new Etcd3({ hosts: srv.endpoint });
  });
  after(async () => {
    etcd.close();
    await srv.stop();
  });

  /** Collects events of a watcher until `n` arrived. */
  function collect(w: NodeJS.EventEmitter, n: number): Promise<Array<[string, IKeyValue, IKeyValue | undefined]>> {
    const got: Array<[string, IKeyValue, IKeyValue | undefined]> = [];
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${got.length} of ${n} events`)), 15_000);
      const on = (type: string) => (kv: IKeyValue, prev?: IKeyValue) => {
        got.push([type, kv, prev]);
        if (got.length === n) { clearTimeout(t); resolve(got); }
      };
      w.on('put', on('put'));
      w.on('delete', on('delete'));
    });
  }

  it('watches a key: put and delete events with etcd revisions', async () => {
    const w = await etcd.watch().key('e1').create();
    const got = collect(w, 2);
    const p = await etcd.put('e1').value('one').exec();
    const d = await etcd.delete().key('e1').exec();
    const evs = await got;
    assert.equal(evs[0]![0], 'put');
    assert.equal(evs[0]![1].value.toString(), 'one');
    assert.equal(evs[0]![1].mod_revision, p.header.revision);
    assert.equal(evs[1]![0], 'delete');
    assert.equal(evs[1]![1].key.toString(), 'e1');
    assert.equal(evs[1]![1].mod_revision, d.header.revision);
    await w.cancel();
  });

  it('watches a prefix with previous values', async () => {
    const w = await etcd.watch().prefix('e2/').withPreviousKV().create();
    const got = collect(w, 3);
    await etcd.put('e2/a').value('1');
    await etcd.put('e2/a').value('2');
    await etcd.put('e3').value('outside');
    await etcd.delete().key('e2/a');
    const evs = await got;
    assert.deepEqual(evs.map(([t, kv, prev]) => [t, kv.key.toString(), kv.value.toString(), prev?.value.toString()]),
      [['put', 'e2/a', '1', undefined], ['put', 'e2/a', '2', '1'], ['delete', 'e2/a', '', '2']]);
    await w.cancel();
  });

  it('replays from a start revision, and filters with only()', async () => {
    const r1 = await etcd.put('e4').value('a').exec();
    await etcd.delete().key('e4');
    await etcd.put('e4').value('b');
    // Listen before the watch is created: the replay follows the created response at once.
    const all = etcd.watch().key('e4').startRevision(r1.header.revision).watcher();
    const got = collect(all, 3);
    // etcd3's only('delete') sends the NOPUT filter.
    const onlyDeletes = etcd.watch().key('e4').startRevision(r1.header.revision).only('delete').watcher();
    const gotDeletes = collect(onlyDeletes, 1);
    const evs = await got;
    assert.deepEqual(evs.map(([t, kv]) => [t, kv.value.toString()]), [['put', 'a'], ['delete', ''], ['put', 'b']]);
    const dels = await gotDeletes;
    assert.equal(dels[0]![0], 'delete');
    await all.cancel();
    await onlyDeletes.cancel();
  });

  it('a start below the compact revision makes the watcher fail', async () => {
    const r1 = await etcd.put('e5').value('a').exec();
    const r2 = await etcd.put('e5').value('b').exec();
    await etcd.kv.compact({ revision: r2.header.revision, physical: true });
    const w = etcd.watch().key('e5').startRevision(r1.header.revision).watcher();
    const [err] = (await once(w, 'error')) as [Error];
    assert.match(err.message, /Watcher canceled/);
  });

  it('lastRevision() follows the header revisions, so a resumed watcher continues exactly', async () => {
    const w = await etcd.watch().prefix('e6/').create();
    const got = collect(w, 2);
    await etcd.put('e6/a').value('1');
    const r = await etcd.put('e6/b').value('2').exec();
    await got;
    assert.equal(w.lastRevision(), String(Number(r.header.revision) + 1));
    await w.cancel();
  });
});
