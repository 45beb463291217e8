/**
 * The shipped forms of pgetcd, exercised for real (minutes: each runs npm installs and a build):
 * - the tarball `npm pack` makes installs with production dependencies only and runs as
 *   `npx pgetcd` against an external PostgreSQL;
 * - the Dockerfile's steps, read from the Dockerfile itself and run outside Docker (there is no
 *   daemon here): the build stage's install and compile, the runtime stage's production install
 *   and copies, then its ENTRYPOINT + CMD (embedded PostgreSQL in a data folder, as the image
 *   does) until its HEALTHCHECK command passes. So the recipe cannot rot unseen.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTestDatabase } from '../helpers/db.ts';
import { rawClients } from '../helpers/raw.ts';
import { freePort } from '../helpers/server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** npm uses the cache `npm ci` filled first; the registry only for what is missing. */
const NPM_ENV = { ...process.env, npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = NPM_ENV): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 900_000, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} in ${cwd} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

interface Proc { child: ChildProcess; output(): string; exited: Promise<number | null> }

function start(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Proc {
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitForText(p: Proc, text: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!p.output().includes(text)) {
    if (p.child.exitCode !== null) throw new Error(`exited (${p.child.exitCode}) before "${text}":\n${p.output()}`);
    if (Date.now() > deadline) throw new Error(`no "${text}" within ${ms} ms:\n${p.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function putGet(endpoint: string, key: string): Promise<void> {
  const raw = rawClients(endpoint);
  try {
    await raw.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from('v') });
    const r = await raw.call<{ kvs: Array<{ value: Buffer }> }>('KV', 'Range', { key: Buffer.from(key) });
    assert.equal(r.kvs[0]?.value.toString(), 'v');
  } finally {
    raw.close();
  }
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  const code = await p.exited;
  assert.equal(code, 0, p.output());
}

/** A folder the embedded PostgreSQL's user (not root) can reach. */
function reachableTmp(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

describe('shipping: npm pack tarball and the Dockerfile recipe (minutes: npm installs and a build)', () => {
  let tmp: string;
  before(() => { tmp = reachableTmp('pgetcd-ship-'); });
  after(() => { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); });

  it('the npm pack tarball installs with production dependencies only and runs as npx pgetcd against an external PostgreSQL', async () => {
    const packed = sh('npm', ['pack', '--json', '--pack-destination', tmp], ROOT);
    const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = info[0]!.files.map((f) => f.path);
    assert.ok(files.includes('dist/main.js') && files.includes('bin/pgetcd.js'), files.join(' '));
    assert.ok(files.some((f) => f.startsWith('migrations/')) && files.some((f) => f.startsWith('proto/')));
    assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.endsWith('.map')), `only the compiled code ships: ${files.join(' ')}`);

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'pgetcd-pack-check', version: '1.0.0', private: true }));
    sh('npm', ['install', '--omit=dev', path.join(tmp, info[0]!.filename)], app);
    // Production dependencies only: neither the compiler nor tsx is there, so the compiled code runs.
    assert.ok(!fs.existsSync(path.join(app, 'node_modules', 'typescript')));
    assert.ok(!fs.existsSync(path.join(app, 'node_modules', 'tsx')));

    const help = sh('npx', ['--no-install', 'pgetcd', '--help'], app);
    assert.match(help.stdout, /^Usage: pgetcd/);

    const port = await freePort();
    const metrics = await freePort();
    // The server through the installed command itself (npx's own process would stand between
    // the signal and pgetcd).
    const p = start(process.execPath, [path.join(app, 'node_modules', '.bin', 'pgetcd'), '--endpoint', await createTestDatabase(), '--listen-client-urls', `http://127.0.0.1:${port}`,
      '--listen-metrics-urls', `http://127.0.0.1:${metrics}`], app, NPM_ENV);
    try {
      await waitForText(p, 'serving etcd gRPC', 120_000);
      await putGet(`127.0.0.1:${port}`, 'packed');
      const health = await fetch(`http://127.0.0.1:${metrics}/health`);
      assert.equal(health.status, 200);
    } finally {
      await stop(p);
    }
    assert.match(p.output(), /"msg":"stopped"/);
  });

  it("the Dockerfile's steps, run outside Docker: build stage, production-only runtime stage, ENTRYPOINT + CMD with embedded PostgreSQL, HEALTHCHECK passes", async () => {
    const recipe = parseDockerfile(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
    assert.ok(recipe.stages.length >= 2, 'multi-stage');
    const roots = new Map<string, string>();
    let env: NodeJS.ProcessEnv = NPM_ENV;
    let cwd = '';
    for (const [i, stage] of recipe.stages.entries()) {
      const root = path.join(tmp, `stage${i}`);
      fs.mkdirSync(root, { recursive: true });
      if (stage.name) roots.set(stage.name, root);
      env = { ...NPM_ENV };
      cwd = root;
      for (const step of stage.steps) {
        if (step.op === 'WORKDIR') {
          cwd = path.join(root, step.arg);
          fs.mkdirSync(cwd, { recursive: true });
        } else if (step.op === 'ENV') {
          const [k, ...v] = step.arg.split('=');
          env[k!] = v.join('=');
        } else if (step.op === 'COPY') {
          copyStep(step.arg, cwd, roots);
        } else if (step.op === 'RUN') {
          for (const part of step.arg.split('&&').map((s) => s.trim())) {
            // Not run here: the cache cleanup only shrinks the image (here it would empty this
            // machine's npm cache), and the data volume's folder and owner exist only in the image.
            if (/^npm cache clean/.test(part) || /^(mkdir -p|chown node:node) \/data$/.test(part)) continue;
            assert.match(part, /^npm /, `a RUN step this test does not know how to run outside Docker: ${part}`);
            sh('sh', ['-c', part], cwd, env);
          }
        }
      }
    }
    const runtime = cwd;
    assert.ok(!fs.existsSync(path.join(runtime, 'node_modules', 'typescript')), 'the runtime stage has no dev dependencies');
    assert.ok(!fs.existsSync(path.join(runtime, 'node_modules', 'tsx')), 'the runtime stage has no dev dependencies');
    assert.ok(!fs.existsSync(path.join(runtime, 'src')), 'the runtime stage has no TypeScript sources');

    // The container's command line, with its ports and /data moved to free ports and a temp folder.
    const port = await freePort();
    const metrics = await freePort();
    const data = path.join(tmp, 'data');
    const local = (s: string): string => s.replaceAll(':2379', `:${port}`).replaceAll(':2381', `:${metrics}`).replace(/^\/data$/, data);
    const [cmd, ...args] = [...recipe.entrypoint, ...recipe.cmd].map(local);
    assert.equal(cmd, 'node');
    const p = start(process.execPath, args, runtime, env);
    try {
      await waitForText(p, 'serving etcd gRPC', 300_000);
      assert.ok(recipe.healthcheck, 'a HEALTHCHECK');
      const check = local(recipe.healthcheck);
      const deadline = Date.now() + 60_000;
      for (;;) {
        const r = spawnSync('sh', ['-c', check], { cwd: runtime, env, encoding: 'utf8', timeout: 30_000 });
        if (r.status === 0) break;
        if (Date.now() > deadline) assert.fail(`HEALTHCHECK ${check} kept failing (${r.status}): ${r.stderr}\n${p.output()}`);
        await new Promise((res) => setTimeout(res, 1000));
      }
      await putGet(`127.0.0.1:${port}`, 'image');
    } finally {
      await stop(p);
    }
  });
});

interface Step { op: string; arg: string }
interface Recipe { stages: Array<{ name?: string; steps: Step[] }>; entrypoint: string[]; cmd: string[]; healthcheck?: string }

/** The instructions of a Dockerfile, continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Recipe {
  const lines = text.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const recipe: Recipe = { stages: [], entrypoint: [], cmd: [] };
  for (const line of lines) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `Dockerfile line: ${line}`);
    const [, op, arg] = m as unknown as [string, string, string];
    if (op === 'FROM') {
      recipe.stages.push({ ...(/ AS (\S+)$/i.exec(arg) ? { name: / AS (\S+)$/i.exec(arg)![1]! } : {}), steps: [] });
    } else if (op === 'ENTRYPOINT') recipe.entrypoint = JSON.parse(arg) as string[];
    else if (op === 'CMD') recipe.cmd = JSON.parse(arg) as string[];
    else if (op === 'HEALTHCHECK') recipe.healthcheck = arg.replace(/^.*?\bCMD\s+/, '');
    else recipe.stages.at(-1)!.steps.push({ op, arg });
  }
  return recipe;
}

/** COPY [--from=stage] src... dest, relative to the build context or to that stage's root. */
function copyStep(arg: string, cwd: string, roots: Map<string, string>): void {
  const words = arg.split(/\s+/);
  let from: string | undefined;
  if (words[0]!.startsWith('--from=')) from = words.shift()!.slice('--from='.length);
  const dest = words.pop()!;
  const base = from ? roots.get(from) : ROOT;
  assert.ok(base, `COPY --from=${from}: no such stage`);
  const target = path.resolve(cwd, dest);
  for (const src of words) {
    const s = path.join(base, src);
    const stat = fs.statSync(s);
    if (stat.isDirectory()) fs.cpSync(s, target, { recursive: true });
    else if (dest.endsWith('/') || words.length > 1) {
      fs.mkdirSync(target, { recursive: true });
      fs.copyFileSync(s, path.join(target, path.basename(s)));
    } else fs.copyFileSync(s, target);
  }
}
