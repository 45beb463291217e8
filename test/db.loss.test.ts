/**
 * ConnectionLoss (src/db/loss.ts): the writer's statements on its dedicated connections fail
 * as soon as the connection is reported lost, and a guarded statement leaves nothing behind
 * once it settled (the write path used to race every batch against one connection-long promise
 * and so kept every batch's result alive: 68,000 postgres.js Results after two `etcdctl check
 * perf --load=m` runs).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ConnectionLoss } from '../src/db/loss.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('ConnectionLoss', () => {
  it('passes results and errors through, and forgets each statement once it settled', async () => {
    const loss = new ConnectionLoss();
    assert.equal(await loss.guard(Promise.resolve(7)), 7);
    await assert.rejects(loss.guard(Promise.reject(new Error('bad SQL'))), /bad SQL/);
    assert.equal(loss.pending, 0);
  });

  it('fails pending and later statements with the loss', async () => {
    const loss = new ConnectionLoss();
    const never = new Promise<number>(() => undefined);
    const pending = loss.guard(never);
    assert.equal(loss.pending, 1);
    loss.fail(new Error('connection to PostgreSQL lost'));
    await assert.rejects(pending, /connection to PostgreSQL lost/);
    assert.equal(loss.pending, 0);
    assert.equal(loss.lost, true);
    await assert.rejects(loss.guard(Promise.resolve(1)), /connection to PostgreSQL lost/);
    // A statement that fails after the loss was reported is not an unhandled rejection.
    await assert.rejects(loss.guard(Promise.reject(new Error('late'))), /connection to PostgreSQL lost/);
  });

  it('keeps no settled result alive, however many statements it guarded', async () => {
    const loss = new ConnectionLoss();
    const refs: Array<WeakRef<object>> = [];
    // As the writer uses it: a statement's promise guarded inside an async step.
    const step = async (result: object): Promise<object> => loss.guard(new Promise<object>((resolve) => setImmediate(() => resolve(result))));
    for (let i = 0; i < 2_000; i++) {
      const result = { rows: new Array(100).fill(i) };
      refs.push(new WeakRef(result));
      await step(result);
    }
    await new Promise((r) => setImmediate(r));
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    const alive = refs.filter((r) => r.deref() !== undefined).length;
    assert.ok(alive <= 1, `${alive} of 2,000 results still reachable`);
  });
});
