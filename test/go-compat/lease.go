package main

import (
	"context"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
)

// leaseChecks covers the Lease service through clientv3's lessor.
func leaseChecks(r *Runner) {
	c := r.c
	var id clientv3.LeaseID
	k := r.Key("lease", "attached")

	ok := r.Check("lease.grant", func(ctx context.Context) error {
		g, err := c.Grant(ctx, 60)
		if err != nil {
			return err
		}
		if err := wantHeader(g.ResponseHeader); err != nil {
			return err
		}
		if g.ID == 0 || g.TTL != 60 || g.Error != "" {
			return errorf("grant: id=%d ttl=%d error=%q, want id != 0, ttl 60", g.ID, g.TTL, g.Error)
		}
		id = g.ID
		pr, err := c.Put(ctx, k, "v", clientv3.WithLease(id))
		if err != nil {
			return err
		}
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		if gr.Kvs[0].Lease != int64(id) {
			return errorf("key lease = %d, want %d", gr.Kvs[0].Lease, id)
		}
		t, err := c.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(k), "=", id)).Commit()
		if err != nil {
			return err
		}
		if !t.Succeeded {
			return errorf("compare LeaseValue(key) = lease: not succeeded")
		}
		// WithIgnoreLease keeps the key's lease.
		if _, err := c.Put(ctx, k, "v2", clientv3.WithIgnoreLease()); err != nil {
			return errorf("put with ignore_lease: %v", err)
		}
		gr, err = c.Get(ctx, k)
		if err != nil {
			return err
		}
		if gr.Kvs[0].Lease != int64(id) || string(gr.Kvs[0].Value) != "v2" || gr.Kvs[0].CreateRevision != pr.Header.Revision {
			return errorf("after put with ignore_lease: %s, want lease %d", kvSummary(gr.Kvs), id)
		}
		_, err = c.Put(ctx, k, "v3", clientv3.WithIgnoreLease(), clientv3.WithLease(id))
		if e := wantErr(err, rpctypes.ErrLeaseProvided); e != nil {
			return errorf("ignore_lease with a lease: %v", e)
		}
		return nil
	})
	if !ok {
		for _, n := range []string{"time_to_live", "min_ttl", "keep_alive_once", "leases", "keep_alive_channel", "revoke", "expiry"} {
			r.Skip("lease."+n, "lease.grant failed")
		}
		return
	}

	r.Check("lease.time_to_live", func(ctx context.Context) error {
		t, err := c.TimeToLive(ctx, id, clientv3.WithAttachedKeys())
		if err != nil {
			return err
		}
		if t.ID != id || t.GrantedTTL != 60 || t.TTL <= 0 || t.TTL > 60 {
			return errorf("id=%d ttl=%d granted=%d, want %d, (0,60], 60", t.ID, t.TTL, t.GrantedTTL, id)
		}
		if len(t.Keys) != 1 || string(t.Keys[0]) != k {
			return errorf("attached keys %q, want [%q]", t.Keys, k)
		}
		plain, err := c.TimeToLive(ctx, id)
		if err != nil {
			return err
		}
		if len(plain.Keys) != 0 {
			return errorf("keys without WithAttachedKeys: %q", plain.Keys)
		}
		// etcd answers an unknown lease with TTL -1, not an error.
		gone, err := c.TimeToLive(ctx, clientv3.LeaseID(0x7eadbeef0bad))
		if err != nil {
			return errorf("time-to-live of an unknown lease: %v", err)
		}
		if gone.TTL != -1 || gone.ID != 0x7eadbeef0bad {
			return errorf("time-to-live of an unknown lease: id=%d ttl=%d, want the id and -1", gone.ID, gone.TTL)
		}
		return nil
	})

	// etcd raises a TTL under its minimum (1.5 election timeouts: 2s with the default 1s) to it.
	r.Check("lease.min_ttl", func(ctx context.Context) error {
		g, err := c.Grant(ctx, 1)
		if err != nil {
			return err
		}
		defer c.Revoke(context.Background(), g.ID)
		if g.TTL != 2 {
			return errorf("grant of 1s: ttl=%d, want 2 (etcd's minimum lease TTL with default timeouts)", g.TTL)
		}
		return nil
	})

	r.Check("lease.keep_alive_once", func(ctx context.Context) error {
		ka, err := c.KeepAliveOnce(ctx, id)
		if err != nil {
			return err
		}
		if ka.ID != id || ka.TTL != 60 {
			return errorf("keep-alive: id=%d ttl=%d, want %d 60", ka.ID, ka.TTL, id)
		}
		return wantHeader(ka.ResponseHeader)
	})

	r.Check("lease.leases", func(ctx context.Context) error {
		l, err := c.Leases(ctx)
		if err != nil {
			return err
		}
		if err := wantHeader(l.ResponseHeader); err != nil {
			return err
		}
		for _, s := range l.Leases {
			if s.ID == id {
				return nil
			}
		}
		return errorf("lease %d not among %v", id, l.Leases)
	})

	// clientv3's KeepAlive channel keeps a short lease alive past its TTL.
	r.Check("lease.keep_alive_channel", func(ctx context.Context) error {
		g, err := c.Grant(ctx, 2)
		if err != nil {
			return err
		}
		kk := r.Key("lease", "kept")
		if _, err := c.Put(ctx, kk, "v", clientv3.WithLease(g.ID)); err != nil {
			return err
		}
		kctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ch, err := c.KeepAlive(kctx, g.ID)
		if err != nil {
			return err
		}
		deadline := time.After(4 * time.Second)
		n := 0
	loop:
		for {
			select {
			case resp, open := <-ch:
				if !open {
					return errorf("keep-alive channel closed after %d responses", n)
				}
				if resp.ID != g.ID || resp.TTL <= 0 {
					return errorf("keep-alive response id=%d ttl=%d", resp.ID, resp.TTL)
				}
				n++
			case <-deadline:
				break loop
			}
		}
		if n < 2 {
			return errorf("%d keep-alive responses in 4s for a 2s lease, want several", n)
		}
		gr, err := c.Get(ctx, kk)
		if err != nil {
			return err
		}
		if len(gr.Kvs) != 1 {
			return errorf("key of a kept-alive lease is gone after 4s")
		}
		_, err = c.Revoke(ctx, g.ID)
		return err
	})

	r.Check("lease.revoke", func(ctx context.Context) error {
		rv, err := c.Revoke(ctx, id)
		if err != nil {
			return err
		}
		if err := wantHeader(rv.Header); err != nil {
			return err
		}
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		if len(gr.Kvs) != 0 {
			return errorf("key attached to a revoked lease still there: %s", kvSummary(gr.Kvs))
		}
		t, err := c.TimeToLive(ctx, id)
		if err != nil {
			return err
		}
		if t.TTL != -1 {
			return errorf("time-to-live of a revoked lease: ttl=%d, want -1", t.TTL)
		}
		_, err = c.Revoke(ctx, id)
		if e := wantErr(err, rpctypes.ErrLeaseNotFound); e != nil {
			return errorf("second revoke: %v", e)
		}
		_, err = c.Put(ctx, k, "v", clientv3.WithLease(id))
		if e := wantErr(err, rpctypes.ErrLeaseNotFound); e != nil {
			return errorf("put with a revoked lease: %v", e)
		}
		return nil
	})

	r.Check("lease.expiry", func(ctx context.Context) error {
		g, err := c.Grant(ctx, 2)
		if err != nil {
			return err
		}
		kk := r.Key("lease", "expiring")
		if _, err := c.Put(ctx, kk, "v", clientv3.WithLease(g.ID)); err != nil {
			return err
		}
		start := time.Now()
		for {
			gr, err := c.Get(ctx, kk)
			if err != nil {
				return err
			}
			if len(gr.Kvs) == 0 {
				break
			}
			if time.Since(start) > 12*time.Second {
				return errorf("key of an unrenewed 2s lease still there after %s", time.Since(start).Round(time.Millisecond))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if d := time.Since(start); d < 1500*time.Millisecond {
			return errorf("a 2s lease expired after %s", d.Round(time.Millisecond))
		}
		t, err := c.TimeToLive(ctx, g.ID)
		if err != nil {
			return err
		}
		if t.TTL != -1 {
			return errorf("time-to-live of an expired lease: ttl=%d, want -1", t.TTL)
		}
		_, err = c.KeepAliveOnce(ctx, g.ID)
		if e := wantErr(err, rpctypes.ErrLeaseNotFound); e != nil {
			return errorf("keep-alive of an expired lease: %v", e)
		}
		return nil
	})
}
