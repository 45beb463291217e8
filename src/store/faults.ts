/**
 * Test-only fault injection for the write path. Off in production: every hook is undefined and
 * costs one property check per batch. Tests that run pgetcd in their own process set a hook to
 * force interleavings that real deployments reach only by bad luck (a delayed database link, a
 * batch that stalls between evaluation and commit) and check the outcome is still etcd's.
 */

/** A write batch about to send its commit. */
export interface CommitFault {
  /** The writer of the instance (compare with `app.store.writer` to pick an instance). */
  writer: object;
  /** Evaluated on the key index (one round trip) or the reading way (meta lock held). */
  speculative: boolean;
  /** The revision the batch was evaluated on, and the one it will end at. */
  revision: number;
  to: number;
  /** The batch's mutations, by type. */
  types: readonly string[];
}

export interface WriteFaults {
  /** Awaited before a batch's commit is sent; a rejection fails the batch like a database error. */
  beforeCommit?: (f: CommitFault) => Promise<void> | undefined;
}

export const writeFaults: WriteFaults = {};
