import { runCli } from './cli/main.ts';

void runCli(process.argv.slice(2)).then((code) => {
  if (code === undefined) return; // the server runs until a signal
  process.exitCode = code;
  // Output drains first; a handle left open by a failed command must not keep the process up.
  setTimeout(() => process.exit(code), 5000).unref();
});
