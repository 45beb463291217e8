import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alarmReason, HealthMonitor } from '../src/health/monitor.ts';
import { createLogger } from '../src/log.ts';

/**
 * etcd's /health on an active alarm (server/etcdserver/api/etcdhttp/health.go, checkAlarms): the
 * first alarm not excluded with ?exclude= decides, as "ALARM NOSPACE", "ALARM CORRUPT" or "ALARM
 * UNKNOWN", before the database is asked. pgetcd raises no alarm yet (see docs/metrics.md), so the
 * monitor is given its alarm list here directly; the database part is a ping that answers.
 */
describe('/health on active alarms', () => {
  const monitor = (alarms: string[], pinged: { n: number }): HealthMonitor => {
    const m = new HealthMonitor({ log: createLogger('silent'), pingTimeoutMs: 1000, listenerGraceMs: 1000, probeIntervalMs: 1000 });
    m.attach({ ping: async () => { pinged.n++; }, alarms: () => alarms, listenerDownForMs: () => undefined });
    return m;
  };

  it("answers etcd's reason for the first alarm not excluded, and asks the database only when none is left", async () => {
    const pinged = { n: 0 };
    const m = monitor(['NOSPACE', 'CORRUPT'], pinged);
    assert.deepEqual(await m.health(), { ok: false, reason: 'ALARM NOSPACE' });
    assert.deepEqual(await m.health(new Set(['NOSPACE'])), { ok: false, reason: 'ALARM CORRUPT' });
    assert.equal(pinged.n, 0);
    assert.deepEqual(await m.health(new Set(['NOSPACE', 'CORRUPT'])), { ok: true, reason: '' });
    assert.equal(pinged.n, 1);
    assert.deepEqual(await monitor([], pinged).health(), { ok: true, reason: '' });
  });

  it('names the alarms etcd names and calls any other UNKNOWN', () => {
    assert.equal(alarmReason('NOSPACE'), 'ALARM NOSPACE');
    assert.equal(alarmReason('CORRUPT'), 'ALARM CORRUPT');
    assert.equal(alarmReason('NONE'), 'ALARM UNKNOWN');
  });
});
