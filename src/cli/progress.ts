import cliProgress from 'cli-progress';

/** Progress of a long operation: rows moved, keys imported, revisions compacted. */
export interface Progress {
  start(total: number, what: string): void;
  update(done: number): void;
  stop(): void;
}

export const NO_PROGRESS: Progress = { start: () => undefined, update: () => undefined, stop: () => undefined };

/** A progress bar on stderr when it is a terminal; silent otherwise (scripts, CI, pipes). */
export function progressBar(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return NO_PROGRESS;
  let bar: cliProgress.SingleBar | undefined;
  return {
    start(total, what) {
      bar?.stop();
      bar = new cliProgress.SingleBar({
        stream,
        format: `${what} [{bar}] {percentage}% {value}/{total} {eta_formatted} left`,
        hideCursor: true,
        clearOnComplete: false,
      }, cliProgress.Presets.shades_classic);
      bar.start(Math.max(total, 1), 0);
    },
    update(done) { bar?.update(done); },
    stop() { bar?.stop(); bar = undefined; },
  };
}
