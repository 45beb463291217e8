import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTestDatabase } from '../helpers/db.ts';
import { rawClients } from '../helpers/raw.ts';
import { freePort, startServerProcess } from '../helpers/server.ts';


function logLines(out: string): Array<Record<string, unknown>> {
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('requests and shutdown', () => {
  it('requests slower than --warning-apply-duration are logged at warn with method, key prefix and duration, never the value', async () => {
    const url = await createTestDatabase();
    const port = await freePort();
    const s = await startServerProcess(url, port, ['--warning-apply-duration', '1ns']);
    let out = '';
    s.child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    const raw = rawClients(s.endpoint);
    try {
      await raw.call('KV', 'Put', { key: Buffer.from('/registry/secrets/default/db-password'), value: Buffer.from('hunter2-value') });
      const deadline = Date.now() + 10_000;
      while (!out.includes('request took too long') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    } finally {
      raw.close();
      await s.stop();
    }
    const line = logLines(out).find((l) => l.msg === 'request took too long');
    assert.ok(line, out);
    assert.equal(line.level, 40);
    assert.equal(line.method, '/etcdserverpb.KV/Put');
    assert.equal(line.keyPrefix, '/registry/secrets/default/');
    assert.equal(typeof line.tookMs, 'number');
    assert.ok(!out.includes('hunter2') && !out.includes('db-password'));
  });

});
