/** Polls `f` until it returns a value (not undefined), or fails after timeoutMs naming `what`. */
export async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
