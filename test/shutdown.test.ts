/**
 * Shutdown with a stream that holds the drain: a client opens a Watch stream and never lets the
 * server send (its HTTP/2 window is 0), so after SIGTERM the graceful drain waits on that stream
 * (up to its 5 s bound). A second SIGTERM or SIGINT during the drain exits at once, with code 1
 * and a log line saying so, before the drain could finish ("stopped" is never logged).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http2 from 'node:http2';
import { describe, it } from 'node:test';
import { createTestDatabase } from './helpers/db.ts';
import { freePort, startServerProcess } from './helpers/server.ts';

/** A gRPC message frame: not compressed, 4-byte length, payload. */
function frame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

// WatchRequest{ create_request: WatchCreateRequest{ key: "a" } }, protobuf by hand.
const CREATE_WATCH = Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x61]);

async function waitForOutput(output: () => string, text: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!output().includes(text)) {
    if (Date.now() > deadline) throw new Error(`no "${text}" within ${ms} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

for (const second of ['SIGTERM', 'SIGINT'] as const) {
  describe(`a second signal during a drain held by an open Watch stream (${second})`, () => {
    it('exits at once with code 1, before the drain ends', async () => {
      const port = await freePort();
      const s = await startServerProcess(await createTestDatabase(), port, ['--log-level', 'debug']);
      // A window of 0: the server can send headers and trailers but no message on our stream.
      const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 0 } });
      session.on('error', () => undefined);
      try {
        const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
        stream.on('error', () => undefined);
        stream.write(frame(CREATE_WATCH));
        // grpc-js answers with its headers when it sends the first message (the watch's
        // "created" response): from here on that message waits on our window.
        await once(stream, 'response');
        s.child.kill('SIGTERM');
        await waitForOutput(s.output, 'shutting down', 30_000);
        s.child.kill(second);
        const [code] = (await once(s.child, 'exit')) as [number | null];
        assert.equal(code, 1, s.output());
        assert.match(s.output(), /second signal: exiting now/);
        assert.doesNotMatch(s.output(), /"msg":"stopped"/, 'the drain was cut short, not finished');
      } finally {
        session.destroy();
        if (s.child.exitCode === null && s.child.signalCode === null) await s.kill();
      }
    });
  });
}
