#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=33554432 node
// (The allocator setting on the line above is src/alloc.ts's MALLOC_TUNABLES; see there why.)
// The pgetcd command. An installed package (npm pack, the image) has dist/ and no src/: it runs
// the compiled JavaScript. A source checkout with its dev dependencies (tsx) runs src/ through
// tsx instead, so tests and development never run a stale build; `npm start` builds dist/ first.
import fs from 'node:fs';

const src = new URL('../src/main.ts', import.meta.url);
const dist = new URL('../dist/main.js', import.meta.url);

async function tsxLoader() {
  try {
    return await import('tsx/esm/api');
  } catch {
    return undefined;
  }
}

const tsx = fs.existsSync(src) ? await tsxLoader() : undefined;
if (tsx) {
  tsx.register();
  await import(src.href);
} else if (fs.existsSync(dist)) {
  await import(dist.href);
} else {
  process.stderr.write('pgetcd: dist/main.js is missing: run `npm run build` first\n');
  process.exit(2);
}
