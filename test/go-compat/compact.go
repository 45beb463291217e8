package main

import (
	"context"
	"strconv"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
)

// compactChecks: kube-apiserver's compactor and reads of compacted revisions.
func compactChecks(r *Runner, watchOK bool) {
	if !r.selected("compact.") {
		return
	}
	c := r.c
	k := r.Key("compact", "k")
	var r1, r2 int64
	ok := r.Check("compact.kube_compactor", func(ctx context.Context) error {
		p1, err := c.Put(ctx, k, "1")
		if err != nil {
			return err
		}
		p2, err := c.Put(ctx, k, "2")
		if err != nil {
			return err
		}
		if _, err := c.Put(ctx, k, "3"); err != nil {
			return err
		}
		r1, r2 = p1.Header.Revision, p2.Header.Revision
		// kube-apiserver's compactor elects itself through a version compare on a shared key,
		// then compacts.
		ck := r.Key("compact", "compact_rev_key")
		t, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Version(ck), "=", 0)).
			Then(clientv3.OpPut(ck, strconv.FormatInt(r2, 10))).Else(clientv3.OpGet(ck)).Commit()
		if err != nil {
			return err
		}
		if !t.Succeeded {
			return errorf("compactor txn on a fresh key did not succeed")
		}
		cr, err := c.Compact(ctx, r2, clientv3.WithCompactPhysical())
		if err != nil {
			return err
		}
		return wantHeader(cr.Header)
	})
	if !ok {
		r.Skip("compact.read_compacted", "compact.kube_compactor failed")
		r.Skip("compact.errors", "compact.kube_compactor failed")
		r.Skip("watch.compacted", "compact.kube_compactor failed")
		return
	}

	r.Check("compact.read_compacted", func(ctx context.Context) error {
		_, err := c.Get(ctx, k, clientv3.WithRev(r1))
		if e := wantErr(err, rpctypes.ErrCompacted); e != nil {
			return errorf("get at revision %d below the compaction at %d: %v", r1, r2, e)
		}
		gr, err := c.Get(ctx, k, clientv3.WithRev(r2))
		if err != nil {
			return errorf("get at the compaction revision: %v", err)
		}
		if err := wantKeys(gr.Kvs, []string{k}, []string{"2"}); err != nil {
			return errorf("get at the compaction revision: %v", err)
		}
		// A txn whose read is compacted fails the same way.
		_, err = c.Txn(ctx).Then(clientv3.OpGet(k, clientv3.WithRev(r1))).Commit()
		if e := wantErr(err, rpctypes.ErrCompacted); e != nil {
			return errorf("txn with a compacted read: %v", e)
		}
		return nil
	})

	r.Check("compact.errors", func(ctx context.Context) error {
		_, err := c.Compact(ctx, r2)
		if e := wantErr(err, rpctypes.ErrCompacted); e != nil {
			return errorf("compacting the compacted revision again: %v", e)
		}
		_, err = c.Compact(ctx, r1)
		if e := wantErr(err, rpctypes.ErrCompacted); e != nil {
			return errorf("compacting below the compacted revision: %v", e)
		}
		cur, err := currentRev(ctx, c)
		if err != nil {
			return err
		}
		_, err = c.Compact(ctx, cur+1000)
		if e := wantErr(err, rpctypes.ErrFutureRev); e != nil {
			return errorf("compacting a future revision: %v", e)
		}
		return nil
	})

	if !watchOK {
		r.Skip("watch.compacted", "the Watch service does not deliver events")
		return
	}
	r.Check("watch.compacted", func(ctx context.Context) error {
		cctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		ch := c.Watch(cctx, k, clientv3.WithRev(r1))
		resp, err := recv(ch, watchWait)
		if err != nil {
			return err
		}
		if resp.CompactRevision != r2 || !resp.Canceled {
			return errorf("compact_revision=%d canceled=%v events=%s, want %d true", resp.CompactRevision, resp.Canceled, evSummary(resp.Events), r2)
		}
		if resp.Err() != rpctypes.ErrCompacted {
			return errorf("Err() = %v, want rpctypes.ErrCompacted", resp.Err())
		}
		select {
		case extra, open := <-ch:
			if open {
				return errorf("watch channel still open after the compacted response: got %s", evSummary(extra.Events))
			}
		case <-time.After(watchWait):
			return errorf("watch channel still open %s after the compacted response", watchWait)
		}
		// Watching from the compaction revision itself works.
		evs, _, err := events(c.Watch(cctx, k, clientv3.WithRev(r2)), 2, watchWait)
		if err != nil {
			return errorf("watch from the compaction revision: %v", err)
		}
		if string(evs[0].Kv.Value) != "2" || string(evs[1].Kv.Value) != "3" {
			return errorf("watch from the compaction revision: %s", evSummary(evs))
		}
		return nil
	})
}
