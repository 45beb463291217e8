package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/mvcc/mvccpb"
)

const watchWait = 10 * time.Second

// recv takes the next response from a watch channel.
func recv(ch clientv3.WatchChan, d time.Duration) (clientv3.WatchResponse, error) {
	select {
	case resp, ok := <-ch:
		if !ok {
			return resp, errorf("watch channel closed")
		}
		return resp, nil
	case <-time.After(d):
		return clientv3.WatchResponse{}, errorf("no watch response in %s", d)
	}
}

// events collects n events (skipping progress notifications), failing on a canceled watch.
func events(ch clientv3.WatchChan, n int, d time.Duration) ([]*clientv3.Event, []clientv3.WatchResponse, error) {
	var evs []*clientv3.Event
	var resps []clientv3.WatchResponse
	deadline := time.Now().Add(d)
	for len(evs) < n {
		resp, err := recv(ch, time.Until(deadline))
		if err != nil {
			return evs, resps, errorf("after %d of %d events (%s): %v", len(evs), n, evSummary(evs), err)
		}
		if err := resp.Err(); err != nil {
			return evs, resps, errorf("watch error after %d events: %v (canceled=%v compact_revision=%d)", len(evs), err, resp.Canceled, resp.CompactRevision)
		}
		if resp.IsProgressNotify() || resp.Created {
			continue
		}
		resps = append(resps, resp)
		evs = append(evs, resp.Events...)
	}
	if len(evs) > n {
		return evs, resps, errorf("got %d events, want %d: %s", len(evs), n, evSummary(evs))
	}
	return evs, resps, nil
}

// quiet checks that no event arrives for d.
func quiet(ch clientv3.WatchChan, d time.Duration) error {
	deadline := time.After(d)
	for {
		select {
		case resp, ok := <-ch:
			if !ok {
				return errorf("watch channel closed")
			}
			if len(resp.Events) > 0 {
				return errorf("unexpected events %s", evSummary(resp.Events))
			}
		case <-deadline:
			return nil
		}
	}
}

func evSummary(evs []*clientv3.Event) string {
	parts := make([]string, len(evs))
	for i, e := range evs {
		parts[i] = fmt.Sprintf("%s %s=%q@m%d", e.Type, e.Kv.Key, e.Kv.Value, e.Kv.ModRevision)
		if e.PrevKv != nil {
			parts[i] += fmt.Sprintf("(prev %q@m%d)", e.PrevKv.Value, e.PrevKv.ModRevision)
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

type wantEv struct {
	typ  mvccpb.Event_EventType
	key  string
	val  string
	mod  int64
	prev string // "-" = no prev_kv
}

func matchEvents(evs []*clientv3.Event, want []wantEv) error {
	ok := len(evs) == len(want)
	for i := 0; ok && i < len(evs); i++ {
		e, w := evs[i], want[i]
		ok = e.Type == w.typ && string(e.Kv.Key) == w.key && string(e.Kv.Value) == w.val && e.Kv.ModRevision == w.mod
		if ok && w.prev == "-" {
			ok = e.PrevKv == nil
		} else if ok && w.prev != "" {
			ok = e.PrevKv != nil && string(e.PrevKv.Value) == w.prev
		}
	}
	if !ok {
		ws := make([]string, len(want))
		for i, w := range want {
			ws[i] = fmt.Sprintf("%s %s=%q@m%d", w.typ, w.key, w.val, w.mod)
			if w.prev != "" && w.prev != "-" {
				ws[i] += fmt.Sprintf("(prev %q)", w.prev)
			}
		}
		return errorf("events %s, want [%s]", evSummary(evs), strings.Join(ws, ", "))
	}
	return nil
}

// watchChecks returns whether the Watch service works (a watch on a key gets its events).
func watchChecks(r *Runner) bool {
	c := r.c
	// kube-apiserver's watch context: require a leader.
	wctx := func(ctx context.Context) (context.Context, context.CancelFunc) {
		return context.WithCancel(clientv3.WithRequireLeader(ctx))
	}

	ok := r.Check("watch.basic", func(ctx context.Context) error {
		k := r.Key("watch", "basic")
		cctx, cancel := wctx(ctx)
		defer cancel()
		ch := c.Watch(cctx, k, clientv3.WithCreatedNotify())
		created, err := recv(ch, watchWait)
		if err != nil {
			return errorf("created response: %v", err)
		}
		if !created.Created || created.Err() != nil || len(created.Events) != 0 {
			return errorf("first response with WithCreatedNotify: created=%v err=%v events=%d", created.Created, created.Err(), len(created.Events))
		}
		if err := wantHeader(&created.Header); err != nil {
			return err
		}
		cur, err := currentRev(ctx, c)
		if err != nil {
			return err
		}
		if created.Header.Revision == 0 || created.Header.Revision > cur {
			return errorf("created response at revision %d, current revision %d", created.Header.Revision, cur)
		}
		p1, p2, d, err := putPutDelete(ctx, c, k)
		if err != nil {
			return err
		}
		evs, resps, err := events(ch, 3, watchWait)
		if err != nil {
			return err
		}
		r1 := p1.Header.Revision
		if err := matchEvents(evs, []wantEv{
			{mvccpb.PUT, k, "1", r1, "-"}, {mvccpb.PUT, k, "2", p2.Header.Revision, "-"}, {mvccpb.DELETE, k, "", d.Header.Revision, "-"},
		}); err != nil {
			return err
		}
		if !evs[0].IsCreate() || evs[0].Kv.CreateRevision != r1 || evs[0].Kv.Version != 1 {
			return errorf("first put event: %s create=%d version=%d", evSummary(evs[:1]), evs[0].Kv.CreateRevision, evs[0].Kv.Version)
		}
		if !evs[1].IsModify() || evs[1].Kv.CreateRevision != r1 || evs[1].Kv.Version != 2 {
			return errorf("second put event: create=%d version=%d", evs[1].Kv.CreateRevision, evs[1].Kv.Version)
		}
		if del := evs[2].Kv; del.CreateRevision != 0 || del.Version != 0 {
			return errorf("delete event kv: create=%d version=%d, want 0 0", del.CreateRevision, del.Version)
		}
		last := resps[len(resps)-1]
		if last.Header.Revision < d.Header.Revision {
			return errorf("header revision %d of the response with the delete < %d", last.Header.Revision, d.Header.Revision)
		}
		return nil
	})
	if !ok {
		for _, n := range []string{"prefix", "multiplexed", "txn_one_response", "rev_replay", "prev_kv", "start_rev_future", "filters", "lease_expiry", "concurrent_writes", "request_progress", "progress_notify", "cancel"} {
			r.Skip("watch."+n, "watch.basic failed: the Watch service does not deliver events")
		}
		return false
	}

	r.Check("watch.prefix", func(ctx context.Context) error {
		p := r.Key("watch", "pre") + "/"
		cctx, cancel := wctx(ctx)
		defer cancel()
		ch := c.Watch(cctx, p, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		if _, err := recv(ch, watchWait); err != nil {
			return err
		}
		pa, err := c.Put(ctx, p+"a", "1")
		if err != nil {
			return err
		}
		if _, err := c.Put(ctx, r.Key("watch", "pre"), "not in the prefix"); err != nil {
			return err
		}
		if _, err := c.Put(ctx, r.Key("watch", "prf"), "not in the prefix"); err != nil {
			return err
		}
		pb, err := c.Put(ctx, p+"b", "2")
		if err != nil {
			return err
		}
		evs, _, err := events(ch, 2, watchWait)
		if err != nil {
			return err
		}
		return matchEvents(evs, []wantEv{{mvccpb.PUT, p + "a", "1", pa.Header.Revision, ""}, {mvccpb.PUT, p + "b", "2", pb.Header.Revision, ""}})
	})

	// Several watchers on one gRPC stream (one context): each gets its own events.
	r.Check("watch.multiplexed", func(ctx context.Context) error {
		cctx, cancel := wctx(ctx)
		defer cancel()
		ka, kb := r.Key("watch", "mx", "a"), r.Key("watch", "mx", "b")
		cha := c.Watch(cctx, ka, clientv3.WithCreatedNotify())
		chb := c.Watch(cctx, kb, clientv3.WithCreatedNotify())
		for _, ch := range []clientv3.WatchChan{cha, chb} {
			if resp, err := recv(ch, watchWait); err != nil || !resp.Created {
				return errorf("created: %v %v", resp.Created, err)
			}
		}
		pa, err := c.Put(ctx, ka, "A")
		if err != nil {
			return err
		}
		pb, err := c.Put(ctx, kb, "B")
		if err != nil {
			return err
		}
		ea, _, err := events(cha, 1, watchWait)
		if err != nil {
			return errorf("watcher a: %v", err)
		}
		eb, _, err := events(chb, 1, watchWait)
		if err != nil {
			return errorf("watcher b: %v", err)
		}
		if err := matchEvents(ea, []wantEv{{mvccpb.PUT, ka, "A", pa.Header.Revision, ""}}); err != nil {
			return errorf("watcher a: %v", err)
		}
		return matchEvents(eb, []wantEv{{mvccpb.PUT, kb, "B", pb.Header.Revision, ""}})
	})

	r.Check("watch.txn_one_response", func(ctx context.Context) error {
		p := r.Key("watch", "txn") + "/"
		cctx, cancel := wctx(ctx)
		defer cancel()
		ch := c.Watch(cctx, p, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		if _, err := recv(ch, watchWait); err != nil {
			return err
		}
		t, err := c.Txn(ctx).Then(clientv3.OpPut(p+"a", "1"), clientv3.OpPut(p+"b", "2")).Commit()
		if err != nil {
			return err
		}
		resp, err := recv(ch, watchWait)
		if err != nil {
			return err
		}
		rev := t.Header.Revision
		if err := matchEvents(resp.Events, []wantEv{{mvccpb.PUT, p + "a", "1", rev, ""}, {mvccpb.PUT, p + "b", "2", rev, ""}}); err != nil {
			return errorf("one response with both events of the txn: %v", err)
		}
		return nil
	})

	// History: three changes made before the watch, replayed from the first revision.
	k := r.Key("watch", "hist")
	var h1, h2, h3 int64
	histOK := r.Check("watch.rev_replay", func(ctx context.Context) error {
		p1, p2, d, err := putPutDelete(ctx, c, k)
		if err != nil {
			return err
		}
		h1, h2, h3 = p1.Header.Revision, p2.Header.Revision, d.Header.Revision
		cctx, cancel := wctx(ctx)
		defer cancel()
		evs, _, err := events(c.Watch(cctx, k, clientv3.WithRev(h1)), 3, watchWait)
		if err != nil {
			return err
		}
		if err := matchEvents(evs, []wantEv{{mvccpb.PUT, k, "1", h1, "-"}, {mvccpb.PUT, k, "2", h2, "-"}, {mvccpb.DELETE, k, "", h3, "-"}}); err != nil {
			return err
		}
		evs, _, err = events(c.Watch(cctx, k, clientv3.WithRev(h2)), 2, watchWait)
		if err != nil {
			return errorf("from revision %d: %v", h2, err)
		}
		return matchEvents(evs, []wantEv{{mvccpb.PUT, k, "2", h2, ""}, {mvccpb.DELETE, k, "", h3, ""}})
	})

	if histOK {
		r.Check("watch.prev_kv", func(ctx context.Context) error {
			cctx, cancel := wctx(ctx)
			defer cancel()
			evs, _, err := events(c.Watch(cctx, k, clientv3.WithRev(h1), clientv3.WithPrevKV()), 3, watchWait)
			if err != nil {
				return err
			}
			if err := matchEvents(evs, []wantEv{{mvccpb.PUT, k, "1", h1, "-"}, {mvccpb.PUT, k, "2", h2, "1"}, {mvccpb.DELETE, k, "", h3, "2"}}); err != nil {
				return err
			}
			if pk := evs[2].PrevKv; pk.ModRevision != h2 || pk.CreateRevision != h1 || pk.Version != 2 {
				return errorf("prev_kv of the delete: %s, want c%d/m%d/v2", kv1(pk), h1, h2)
			}
			return nil
		})
	} else {
		r.Skip("watch.prev_kv", "watch.rev_replay failed")
	}

	r.Check("watch.start_rev_future", func(ctx context.Context) error {
		kf := r.Key("watch", "future")
		cur, err := currentRev(ctx, c)
		if err != nil {
			return err
		}
		cctx, cancel := wctx(ctx)
		defer cancel()
		ch := c.Watch(cctx, kf, clientv3.WithRev(cur+2))
		if _, err := c.Put(ctx, kf, "skipped"); err != nil {
			return err
		}
		p2, err := c.Put(ctx, kf, "seen")
		if err != nil {
			return err
		}
		if p2.Header.Revision != cur+2 {
			return errorf("another writer moved the revision (%d, want %d)", p2.Header.Revision, cur+2)
		}
		evs, _, err := events(ch, 1, watchWait)
		if err != nil {
			return err
		}
		return matchEvents(evs, []wantEv{{mvccpb.PUT, kf, "seen", cur + 2, ""}})
	})

	r.Check("watch.filters", func(ctx context.Context) error {
		kf := r.Key("watch", "filter")
		cctx, cancel := wctx(ctx)
		defer cancel()
		noDel := c.Watch(cctx, kf, clientv3.WithFilterDelete(), clientv3.WithCreatedNotify())
		noPut := c.Watch(cctx, kf, clientv3.WithFilterPut(), clientv3.WithCreatedNotify())
		for _, ch := range []clientv3.WatchChan{noDel, noPut} {
			if _, err := recv(ch, watchWait); err != nil {
				return err
			}
		}
		p1, err := c.Put(ctx, kf, "1")
		if err != nil {
			return err
		}
		d, err := c.Delete(ctx, kf)
		if err != nil {
			return err
		}
		p2, err := c.Put(ctx, kf, "2")
		if err != nil {
			return err
		}
		evs, _, err := events(noDel, 2, watchWait)
		if err != nil {
			return errorf("WithFilterDelete: %v", err)
		}
		if err := matchEvents(evs, []wantEv{{mvccpb.PUT, kf, "1", p1.Header.Revision, ""}, {mvccpb.PUT, kf, "2", p2.Header.Revision, ""}}); err != nil {
			return errorf("WithFilterDelete: %v", err)
		}
		evs, _, err = events(noPut, 1, watchWait)
		if err != nil {
			return errorf("WithFilterPut: %v", err)
		}
		if err := matchEvents(evs, []wantEv{{mvccpb.DELETE, kf, "", d.Header.Revision, ""}}); err != nil {
			return errorf("WithFilterPut: %v", err)
		}
		if err := quiet(noPut, 300*time.Millisecond); err != nil {
			return errorf("WithFilterPut after the delete: %v", err)
		}
		return nil
	})

	// kube-apiserver (1.27+) asks for progress to serve consistent reads from its watch cache.
	r.Check("watch.request_progress", func(ctx context.Context) error {
		kp := r.Key("watch", "progress")
		cctx, cancel := wctx(ctx)
		defer cancel()
		ch := c.Watch(cctx, kp, clientv3.WithCreatedNotify())
		if _, err := recv(ch, watchWait); err != nil {
			return err
		}
		// A write elsewhere: the progress revision must include it.
		other, err := c.Put(ctx, r.Key("watch", "progress-other"), "x")
		if err != nil {
			return err
		}
		if err := c.RequestProgress(cctx); err != nil {
			return err
		}
		resp, err := recv(ch, watchWait)
		if err != nil {
			return errorf("progress response: %v", err)
		}
		if !resp.IsProgressNotify() {
			return errorf("response after RequestProgress is not a progress notification: events=%s created=%v canceled=%v revision=%d", evSummary(resp.Events), resp.Created, resp.Canceled, resp.Header.Revision)
		}
		if resp.Header.Revision < other.Header.Revision {
			return errorf("progress revision %d < revision of the last write %d", resp.Header.Revision, other.Header.Revision)
		}
		return nil
	})

	if r.progressInterval > 0 {
		r.Check("watch.progress_notify", func(ctx context.Context) error {
			kp := r.Key("watch", "idle")
			cctx, cancel := wctx(ctx)
			defer cancel()
			ch := c.Watch(cctx, kp, clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
			if _, err := recv(ch, watchWait); err != nil {
				return err
			}
			cur, err := currentRev(ctx, c)
			if err != nil {
				return err
			}
			wait := 3*r.progressInterval + 2*time.Second
			resp, err := recv(ch, wait)
			if err != nil {
				return errorf("no progress notification on an idle watch with WithProgressNotify: %v", err)
			}
			if !resp.IsProgressNotify() || resp.Header.Revision < cur {
				return errorf("got events=%s revision=%d, want a progress notification at >= %d", evSummary(resp.Events), resp.Header.Revision, cur)
			}
			return nil
		})
	} else {
		r.Skip("watch.progress_notify", "the server's progress-notify interval is not known to be short (pass -progress-interval)")
	}

	// kube-apiserver stores events with a lease: their expiry reaches watchers as deletes.
	r.Check("watch.lease_expiry", func(ctx context.Context) error {
		kl := r.Key("watch", "leased")
		g, err := c.Grant(ctx, 2)
		if err != nil {
			return err
		}
		p, err := c.Put(ctx, kl, "v", clientv3.WithLease(g.ID))
		if err != nil {
			return err
		}
		cctx, cancel := wctx(ctx)
		defer cancel()
		evs, _, err := events(c.Watch(cctx, kl, clientv3.WithRev(p.Header.Revision+1), clientv3.WithPrevKV()), 1, 15*time.Second)
		if err != nil {
			return errorf("delete event of a 2s lease's key: %v", err)
		}
		e := evs[0]
		if e.Type != mvccpb.DELETE || e.PrevKv == nil || e.PrevKv.Lease != int64(g.ID) || e.Kv.ModRevision <= p.Header.Revision {
			return errorf("event %s, want the delete of the leased key with its prev_kv", evSummary(evs))
		}
		return nil
	})

	// Concurrent writers: the watcher sees every revision once, in order, with the values the
	// writers' answers say.
	r.Check("watch.concurrent_writes", func(ctx context.Context) error {
		p := r.Key("watch", "conc") + "/"
		cur, err := currentRev(ctx, c)
		if err != nil {
			return err
		}
		cctx, cancel := wctx(ctx)
		defer cancel()
		ch := c.Watch(cctx, p, clientv3.WithPrefix(), clientv3.WithRev(cur+1))
		const writers, each = 4, 50
		revs := make(chan [2]int64, writers*each)
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			go func(w int) {
				for i := 0; i < each; i++ {
					pr, err := c.Put(ctx, fmt.Sprintf("%s%d/%03d", p, w, i), fmt.Sprint(w*1000+i))
					if err != nil {
						errs <- err
						return
					}
					revs <- [2]int64{pr.Header.Revision, int64(w*1000 + i)}
				}
				errs <- nil
			}(w)
		}
		for w := 0; w < writers; w++ {
			if err := <-errs; err != nil {
				return err
			}
		}
		close(revs)
		want := map[int64]string{}
		for rv := range revs {
			want[rv[0]] = fmt.Sprint(rv[1])
		}
		if len(want) != writers*each {
			return errorf("%d puts answered %d distinct revisions", writers*each, len(want))
		}
		evs, _, err := events(ch, writers*each, 20*time.Second)
		if err != nil {
			return err
		}
		last := int64(0)
		for _, e := range evs {
			if e.Kv.ModRevision <= last {
				return errorf("event at revision %d after %d", e.Kv.ModRevision, last)
			}
			last = e.Kv.ModRevision
			if v, ok := want[e.Kv.ModRevision]; !ok || v != string(e.Kv.Value) {
				return errorf("event %s: the put answered revision %d with value %q", evSummary([]*clientv3.Event{e}), e.Kv.ModRevision, v)
			}
		}
		return nil
	})

	r.Check("watch.cancel", func(ctx context.Context) error {
		kc := r.Key("watch", "cancel")
		cctx, cancel := wctx(ctx)
		ch := c.Watch(cctx, kc, clientv3.WithCreatedNotify())
		if _, err := recv(ch, watchWait); err != nil {
			cancel()
			return err
		}
		cancel()
		deadline := time.After(watchWait)
		for {
			select {
			case _, open := <-ch:
				if !open {
					// A new watcher still works after the cancel.
					nctx, ncancel := wctx(ctx)
					defer ncancel()
					ch2 := c.Watch(nctx, kc, clientv3.WithCreatedNotify())
					if _, err := recv(ch2, watchWait); err != nil {
						return errorf("new watch after a cancel: %v", err)
					}
					p, err := c.Put(ctx, kc, "after")
					if err != nil {
						return err
					}
					evs, _, err := events(ch2, 1, watchWait)
					if err != nil {
						return errorf("new watch after a cancel: %v", err)
					}
					return matchEvents(evs, []wantEv{{mvccpb.PUT, kc, "after", p.Header.Revision, ""}})
				}
			case <-deadline:
				return errorf("watch channel not closed %s after its context was canceled", watchWait)
			}
		}
	})
	return true
}

// putPutDelete writes "1" then "2" to k and deletes it: three revisions a watch must report.
func putPutDelete(ctx context.Context, c *clientv3.Client, k string) (*clientv3.PutResponse, *clientv3.PutResponse, *clientv3.DeleteResponse, error) {
	p1, err := c.Put(ctx, k, "1")
	if err != nil {
		return nil, nil, nil, err
	}
	p2, err := c.Put(ctx, k, "2")
	if err != nil {
		return nil, nil, nil, err
	}
	d, err := c.Delete(ctx, k)
	if err != nil {
		return nil, nil, nil, err
	}
	return p1, p2, d, nil
}
