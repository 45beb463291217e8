package main

import (
	"context"
	"strconv"
	"strings"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
)

// errorChecks: request errors must arrive as the rpctypes values Go callers compare against.
func errorChecks(r *Runner) {
	c := r.c

	r.Check("errors.empty_key", func(ctx context.Context) error {
		if _, err := c.Put(ctx, "", "v"); wantErr(err, rpctypes.ErrEmptyKey) != nil {
			return errorf("put: %v", wantErr(err, rpctypes.ErrEmptyKey))
		}
		if _, err := c.Get(ctx, ""); wantErr(err, rpctypes.ErrEmptyKey) != nil {
			return errorf("get: %v", wantErr(err, rpctypes.ErrEmptyKey))
		}
		if _, err := c.Delete(ctx, ""); wantErr(err, rpctypes.ErrEmptyKey) != nil {
			return errorf("delete: %v", wantErr(err, rpctypes.ErrEmptyKey))
		}
		return nil
	})

	r.Check("errors.key_not_found", func(ctx context.Context) error {
		_, err := c.Put(ctx, r.Key("errors", "absent"), "", clientv3.WithIgnoreValue())
		return wantErr(err, rpctypes.ErrKeyNotFound)
	})

	r.Check("errors.value_provided", func(ctx context.Context) error {
		k := r.Key("errors", "vp")
		if _, err := c.Put(ctx, k, "x"); err != nil {
			return err
		}
		_, err := c.Put(ctx, k, "y", clientv3.WithIgnoreValue())
		return wantErr(err, rpctypes.ErrValueProvided)
	})

	r.Check("errors.duplicate_key", func(ctx context.Context) error {
		k := r.Key("errors", "dup")
		_, err := c.Txn(ctx).Then(clientv3.OpPut(k, "1"), clientv3.OpPut(k, "2")).Commit()
		if e := wantErr(err, rpctypes.ErrDuplicateKey); e != nil {
			return errorf("two puts: %v", e)
		}
		_, err = c.Txn(ctx).Then(clientv3.OpDelete(r.Key("errors"), clientv3.WithPrefix()), clientv3.OpPut(k, "1")).Commit()
		if e := wantErr(err, rpctypes.ErrDuplicateKey); e != nil {
			return errorf("prefix delete and a put inside it: %v", e)
		}
		// Puts in different branches do not conflict.
		_, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Version(k), "=", 0)).Then(clientv3.OpPut(k, "1")).Else(clientv3.OpPut(k, "2")).Commit()
		return err
	})

	r.Check("errors.too_many_ops", func(ctx context.Context) error {
		ops := make([]clientv3.Op, 129)
		for i := range ops {
			ops[i] = clientv3.OpGet(r.Key("errors", "ops", strconv.Itoa(i)))
		}
		_, err := c.Txn(ctx).Then(ops...).Commit()
		if e := wantErr(err, rpctypes.ErrTooManyOps); e != nil {
			return errorf("129 ops: %v", e)
		}
		_, err = c.Txn(ctx).Then(ops[:128]...).Commit()
		if err != nil {
			return errorf("128 ops (etcd's default --max-txn-ops): %v", err)
		}
		return nil
	})

	r.Check("errors.request_too_large", func(ctx context.Context) error {
		// Over etcd's default --max-request-bytes (1.5 MiB), under the gRPC limit (+512 KiB).
		_, err := c.Put(ctx, r.Key("errors", "big"), strings.Repeat("x", 1600*1024))
		return wantErr(err, rpctypes.ErrRequestTooLarge)
	})

	r.Check("errors.future_revision", func(ctx context.Context) error {
		cur, err := currentRev(ctx, c)
		if err != nil {
			return err
		}
		_, err = c.Get(ctx, r.Key("errors", "x"), clientv3.WithRev(cur+1000))
		return wantErr(err, rpctypes.ErrFutureRev)
	})

	r.Check("errors.lease_not_found", func(ctx context.Context) error {
		_, err := c.Put(ctx, r.Key("errors", "lease"), "v", clientv3.WithLease(clientv3.LeaseID(0x7eadbeef0bad)))
		if e := wantErr(err, rpctypes.ErrLeaseNotFound); e != nil {
			return errorf("put with an unknown lease: %v", e)
		}
		_, err = c.Revoke(ctx, clientv3.LeaseID(0x7eadbeef0bad))
		if e := wantErr(err, rpctypes.ErrLeaseNotFound); e != nil {
			return errorf("revoke of an unknown lease: %v", e)
		}
		_, err = c.KeepAliveOnce(ctx, clientv3.LeaseID(0x7eadbeef0bad))
		if e := wantErr(err, rpctypes.ErrLeaseNotFound); e != nil {
			return errorf("keep-alive of an unknown lease: %v", e)
		}
		return nil
	})

	r.Check("errors.lease_ttl_too_large", func(ctx context.Context) error {
		// etcd's MaxLeaseTTL is 9,000,000,000 seconds.
		_, err := c.Grant(ctx, 9000000001)
		return wantErr(err, rpctypes.ErrLeaseTTLTooLarge)
	})
}
