/**
 * Every create, cancel and progress request on a Watch stream gets an answer, even when handling
 * it throws (injected through the session's test-only fault hook): the watchers it concerns are
 * canceled with a reason, and the requests queued behind it are handled.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { startServer, type TestServer } from './helpers/server.ts';
import { rawClients, type Raw } from './helpers/raw.ts';
import { RawWatch, type WResp } from './helpers/watch.ts';
import { setRequestFaultForTests, type SessionRequest } from '../src/watch/session.ts';

const B = (s: string): Buffer => Buffer.from(s);
/** pgetcd's reason (docs/design.md, Watch). */
const MSG_REQUEST_FAILED = 'etcdserver: watch request failed on the server; watch again from the last revision received';
/** Answers come within milliseconds; a missing one fails the test here instead of at the runner's timeout. */
const WAIT = 5_000;

function boom(when: (req: SessionRequest, stage: 'start' | 'created') => boolean): void {
  setRequestFaultForTests((req, stage) => {
    if (when(req, stage)) throw new Error('injected watch request failure');
  });
}
const keyOf = (req: SessionRequest): string => (req.type === 'create' ? req.create.key.toString() : '');

describe('Watch requests whose handling fails are answered', () => {
  let srv: TestServer;
  let raw: Raw;
  let w: RawWatch;
  const put = async (k: string): Promise<number> => Number((await raw.call('KV', 'Put', { key: B(k), value: B('v') })).header.revision);
  const next = (): Promise<WResp> => w.next(WAIT);
  before(async () => {
    srv = await startServer();
    raw = rawClients(srv.endpoint);
  });
  afterEach(() => {
    setRequestFaultForTests(undefined);
    w?.close();
  });
  after(async () => {
    raw.close();
    await srv.stop();
  });

  it('a create that fails before its watcher exists: created+canceled, watch_id -1, reason; the next create works', async () => {
    w = new RawWatch(raw);
    boom((req) => keyOf(req) === 'f1/boom');
    w.create({ key: B('f1/boom') });
    w.create({ key: B('f1/ok') });
    const failed = await next();
    assert.deepEqual([failed.watch_id, failed.created, failed.canceled, failed.cancel_reason], ['-1', true, true, MSG_REQUEST_FAILED]);
    const ok = await next();
    assert.deepEqual([ok.watch_id, ok.created, ok.canceled], ['0', true, false]);
    const rev = await put('f1/ok');
    const ev = await next();
    assert.equal(ev.watch_id, '0');
    assert.equal(Number(ev.events[0]!.kv.mod_revision), rev);
  });

  it('a create that fails after its created response: the watcher is canceled with the reason and gets no events', async () => {
    w = new RawWatch(raw);
    boom((req, stage) => stage === 'created' && keyOf(req) === 'f2/boom');
    w.create({ key: B('f2/boom'), watch_id: 7 });
    w.create({ key: B('f2/ok'), watch_id: 8 });
    const created = await next();
    assert.deepEqual([created.watch_id, created.created, created.canceled], ['7', true, false]);
    const canceled = await next();
    assert.deepEqual([canceled.watch_id, canceled.created, canceled.canceled, canceled.cancel_reason], ['7', false, true, MSG_REQUEST_FAILED]);
    const ok = await next();
    assert.deepEqual([ok.watch_id, ok.created], ['8', true]);
    await put('f2/boom');
    const rev = await put('f2/ok');
    const ev = await next();
    assert.equal(ev.watch_id, '8', 'the failed watcher got no event');
    assert.equal(Number(ev.events[0]!.kv.mod_revision), rev);
  });

  it('a cancel that fails is answered canceled with the reason; the watcher is gone', async () => {
    w = new RawWatch(raw);
    await w.watch({ key: B('f3/a') });
    boom((req) => req.type === 'cancel');
    w.cancel(0);
    w.create({ key: B('f3/b') });
    const canceled = await next();
    assert.deepEqual([canceled.watch_id, canceled.canceled, canceled.cancel_reason], ['0', true, MSG_REQUEST_FAILED]);
    const ok = await next();
    assert.deepEqual([ok.watch_id, ok.created], ['1', true]);
    await put('f3/a');
    const rev = await put('f3/b');
    const ev = await next();
    assert.equal(ev.watch_id, '1');
    assert.equal(Number(ev.events[0]!.kv.mod_revision), rev);
  });

  it('a progress request that fails cancels the stream\'s watchers with the reason; later requests are answered', async () => {
    w = new RawWatch(raw);
    await w.watch({ key: B('f4/a') });
    await w.watch({ key: B('f4/b') });
    boom((req) => req.type === 'progress');
    w.progress();
    w.create({ key: B('f4/c') });
    const got = [await next(), await next()];
    assert.deepEqual(got.map((r) => [r.watch_id, r.canceled, r.cancel_reason]).sort(), [['0', true, MSG_REQUEST_FAILED], ['1', true, MSG_REQUEST_FAILED]]);
    const ok = await next();
    assert.deepEqual([ok.watch_id, ok.created, ok.canceled], ['2', true, false]);
    setRequestFaultForTests(undefined);
    const progress = await w.barrier(WAIT);
    assert.deepEqual(progress, [], 'nothing else was sent');
  });
});
