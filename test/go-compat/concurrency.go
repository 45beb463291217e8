package main

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
)

// concurrencyChecks: clientv3/concurrency's sessions, mutexes, elections and STM, which are
// built on leases, txns and watches together.
func concurrencyChecks(r *Runner) {
	c := r.c
	var s1, s2 *concurrency.Session
	var s1Start time.Time
	ok := r.Check("concurrency.session", func(ctx context.Context) error {
		var err error
		s1Start = time.Now()
		if s1, err = concurrency.NewSession(c, concurrency.WithTTL(2), concurrency.WithContext(context.Background())); err != nil {
			return err
		}
		if s2, err = concurrency.NewSession(c, concurrency.WithTTL(2), concurrency.WithContext(context.Background())); err != nil {
			return err
		}
		t, err := c.TimeToLive(ctx, s1.Lease())
		if err != nil {
			return err
		}
		if t.GrantedTTL != 2 || t.TTL <= 0 {
			return errorf("session lease: granted=%d ttl=%d, want 2 and > 0", t.GrantedTTL, t.TTL)
		}
		return nil
	})
	if !ok {
		for _, n := range []string{"mutex", "election", "stm", "session_keep_alive", "session_close"} {
			r.Skip("concurrency."+n, "concurrency.session failed")
		}
		return
	}
	defer s2.Close()

	r.Check("concurrency.mutex", func(ctx context.Context) error {
		pfx := r.Key("concurrency", "lock") + "/"
		m1 := concurrency.NewMutex(s1, pfx)
		m2 := concurrency.NewMutex(s2, pfx)
		if err := m1.Lock(ctx); err != nil {
			return errorf("first lock: %v", err)
		}
		got := make(chan error, 1)
		go func() { got <- m2.Lock(ctx) }()
		select {
		case err := <-got:
			return errorf("second session took a held lock (err %v)", err)
		case <-time.After(700 * time.Millisecond):
		}
		// The holder's key guards writes.
		t, err := c.Txn(ctx).If(m1.IsOwner()).Then(clientv3.OpPut(r.Key("concurrency", "guarded"), "1")).Commit()
		if err != nil {
			return err
		}
		if !t.Succeeded {
			return errorf("txn If(m1.IsOwner()) failed while m1 holds the lock")
		}
		if err := m1.Unlock(ctx); err != nil {
			return errorf("unlock: %v", err)
		}
		select {
		case err := <-got:
			if err != nil {
				return errorf("second lock: %v", err)
			}
		case <-time.After(10 * time.Second):
			return errorf("second session did not get the lock within 10s of the unlock")
		}
		t, err = c.Txn(ctx).If(m1.IsOwner()).Commit()
		if err != nil {
			return err
		}
		if t.Succeeded {
			return errorf("If(m1.IsOwner()) still holds after m1 unlocked")
		}
		return m2.Unlock(ctx)
	})

	r.Check("concurrency.election", func(ctx context.Context) error {
		pfx := r.Key("concurrency", "election") + "/"
		e1 := concurrency.NewElection(s1, pfx)
		e2 := concurrency.NewElection(s2, pfx)
		if err := e1.Campaign(ctx, "one"); err != nil {
			return errorf("first campaign: %v", err)
		}
		octx, ocancel := context.WithCancel(ctx)
		defer ocancel()
		observe := concurrency.NewElection(s2, pfx).Observe(octx)
		nextLeader := func(want string) error {
			deadline := time.After(10 * time.Second)
			for {
				select {
				case resp, open := <-observe:
					if !open {
						return errorf("observe channel closed waiting for %q", want)
					}
					if len(resp.Kvs) == 1 && string(resp.Kvs[0].Value) == want {
						return nil
					}
				case <-deadline:
					return errorf("observe did not report leader %q", want)
				}
			}
		}
		if err := nextLeader("one"); err != nil {
			return err
		}
		won := make(chan error, 1)
		go func() { won <- e2.Campaign(ctx, "two") }()
		select {
		case err := <-won:
			return errorf("second campaign won while the first leads (err %v)", err)
		case <-time.After(700 * time.Millisecond):
		}
		l, err := e2.Leader(ctx)
		if err != nil {
			return err
		}
		if string(l.Kvs[0].Value) != "one" {
			return errorf("leader %q, want one", l.Kvs[0].Value)
		}
		if err := e1.Proclaim(ctx, "one-again"); err != nil {
			return errorf("proclaim: %v", err)
		}
		if err := nextLeader("one-again"); err != nil {
			return err
		}
		if err := e1.Resign(ctx); err != nil {
			return errorf("resign: %v", err)
		}
		select {
		case err := <-won:
			if err != nil {
				return errorf("second campaign: %v", err)
			}
		case <-time.After(10 * time.Second):
			return errorf("second campaign not won within 10s of the resignation")
		}
		if err := nextLeader("two"); err != nil {
			return err
		}
		return e2.Resign(ctx)
	})

	r.Check("concurrency.stm", func(ctx context.Context) error {
		k := r.Key("concurrency", "counter")
		if _, err := c.Put(ctx, k, "0"); err != nil {
			return err
		}
		const workers, each = 4, 5
		var attempts, done int64
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					_, err := concurrency.NewSTM(c, func(s concurrency.STM) error {
						atomic.AddInt64(&attempts, 1)
						n, err := strconv.Atoi(s.Get(k))
						if err != nil {
							return err
						}
						s.Put(k, strconv.Itoa(n+1))
						return nil
					}, concurrency.WithAbortContext(ctx))
					if err != nil {
						errs <- err
						return
					}
					atomic.AddInt64(&done, 1)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			return errorf("%v (%d of %d increments done in %d attempts)", err, atomic.LoadInt64(&done), workers*each, atomic.LoadInt64(&attempts))
		}
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		if got := string(gr.Kvs[0].Value); got != strconv.Itoa(workers*each) {
			return errorf("counter = %s after %d serializable STM increments", got, workers*each)
		}
		if v := gr.Kvs[0].Version; v != workers*each+1 {
			return errorf("counter version = %d, want %d", v, workers*each+1)
		}
		return nil
	})

	r.Check("concurrency.session_keep_alive", func(ctx context.Context) error {
		// Outlive the 2s TTL by a margin: only keep-alives keep the session.
		if d := 4*time.Second - time.Since(s1Start); d > 0 {
			time.Sleep(d)
		}
		select {
		case <-s1.Done():
			return errorf("session ended (its keep-alive stopped)")
		default:
		}
		t, err := c.TimeToLive(ctx, s1.Lease())
		if err != nil {
			return err
		}
		if t.TTL <= 0 {
			return errorf("session lease ttl=%d after %s, want > 0", t.TTL, time.Since(s1Start).Round(time.Millisecond))
		}
		return nil
	})

	r.Check("concurrency.session_close", func(ctx context.Context) error {
		k := r.Key("concurrency", "owned")
		if _, err := c.Put(ctx, k, "x", clientv3.WithLease(s1.Lease())); err != nil {
			return err
		}
		if err := s1.Close(); err != nil {
			return err
		}
		t, err := c.TimeToLive(ctx, s1.Lease())
		if err != nil {
			return err
		}
		if t.TTL != -1 {
			return errorf("lease of a closed session: ttl=%d, want -1", t.TTL)
		}
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		if len(gr.Kvs) != 0 {
			return errorf("key of a closed session still there")
		}
		return nil
	})
}
