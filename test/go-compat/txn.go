package main

import (
	"context"
	"strconv"

	"go.etcd.io/etcd/clientv3"
)

// txnChecks covers Txn compares and the request shapes kube-apiserver sends.
func txnChecks(r *Runner) {
	c := r.c

	// kube-apiserver Create: If(ModRevision(key) == 0).Then(OpPut(key, v)).
	r.Check("txn.kube_create", func(ctx context.Context) error {
		k := r.Key("txn", "create")
		t1, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", 0)).Then(clientv3.OpPut(k, "v1")).Commit()
		if err != nil {
			return err
		}
		if err := wantHeader(t1.Header); err != nil {
			return err
		}
		if !t1.Succeeded || len(t1.Responses) != 1 || t1.Responses[0].GetResponsePut() == nil {
			return errorf("first create: succeeded=%v responses=%v", t1.Succeeded, t1.Responses)
		}
		if h := t1.Responses[0].GetResponsePut().Header; h == nil || h.Revision != t1.Header.Revision {
			return errorf("put response inside txn has header %v, want revision %d", h, t1.Header.Revision)
		}
		t2, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", 0)).Then(clientv3.OpPut(k, "v2")).Commit()
		if err != nil {
			return err
		}
		if t2.Succeeded || len(t2.Responses) != 0 {
			return errorf("second create: succeeded=%v responses=%v, want false and none", t2.Succeeded, t2.Responses)
		}
		if t2.Header.Revision != t1.Header.Revision {
			return errorf("failed txn moved the revision %d -> %d", t1.Header.Revision, t2.Header.Revision)
		}
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		rev := t1.Header.Revision
		return wantKV(gr.Kvs[0], k, "v1", rev, rev, 1)
	})

	// kube-apiserver GuaranteedUpdate: If(ModRevision(key) == rev).Then(OpPut).Else(OpGet).
	r.Check("txn.kube_guaranteed_update", func(ctx context.Context) error {
		k := r.Key("txn", "gu")
		p1, err := c.Put(ctx, k, "v1")
		if err != nil {
			return err
		}
		r1 := p1.Header.Revision
		upd := func(rev int64, val string) (*clientv3.TxnResponse, error) {
			return c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).
				Then(clientv3.OpPut(k, val)).Else(clientv3.OpGet(k)).Commit()
		}
		ok, err := upd(r1, "v2")
		if err != nil {
			return err
		}
		if !ok.Succeeded || ok.Header.Revision != r1+1 || ok.Responses[0].GetResponsePut() == nil {
			return errorf("update at the current mod revision: succeeded=%v revision=%d responses=%v", ok.Succeeded, ok.Header.Revision, ok.Responses)
		}
		stale, err := upd(r1, "v3")
		if err != nil {
			return err
		}
		if stale.Succeeded {
			return errorf("update with a stale mod revision succeeded")
		}
		rr := stale.Responses[0].GetResponseRange()
		if rr == nil || len(rr.Kvs) != 1 {
			return errorf("else branch: want one range response with the current object, got %v", stale.Responses)
		}
		if err := wantKV(rr.Kvs[0], k, "v2", r1, r1+1, 2); err != nil {
			return errorf("else branch: %v", err)
		}
		if rr.Header == nil || rr.Header.Revision != ok.Header.Revision {
			return errorf("else range header %v, want revision %d", rr.Header, ok.Header.Revision)
		}
		retry, err := upd(rr.Kvs[0].ModRevision, "v3")
		if err != nil {
			return err
		}
		if !retry.Succeeded {
			return errorf("retry with the mod revision from the else branch failed")
		}
		return nil
	})

	// kube-apiserver conditional delete: If(ModRevision == rev).Then(OpDelete).Else(OpGet).
	r.Check("txn.kube_delete", func(ctx context.Context) error {
		k := r.Key("txn", "del")
		p1, err := c.Put(ctx, k, "x")
		if err != nil {
			return err
		}
		t, err := c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", p1.Header.Revision)).
			Then(clientv3.OpDelete(k, clientv3.WithPrevKV())).Else(clientv3.OpGet(k)).Commit()
		if err != nil {
			return err
		}
		dr := t.Responses[0].GetResponseDeleteRange()
		if !t.Succeeded || dr == nil || dr.Deleted != 1 || len(dr.PrevKvs) != 1 || string(dr.PrevKvs[0].Value) != "x" {
			return errorf("succeeded=%v delete=%v", t.Succeeded, dr)
		}
		if t.Header.Revision != p1.Header.Revision+1 {
			return errorf("delete revision %d, want %d", t.Header.Revision, p1.Header.Revision+1)
		}
		return nil
	})

	r.Check("txn.compares", func(ctx context.Context) error {
		k := r.Key("txn", "cmp")
		p1, err := c.Put(ctx, k, "b")
		if err != nil {
			return err
		}
		p2, err := c.Put(ctx, k, "m")
		if err != nil {
			return err
		}
		cr, mr := p1.Header.Revision, p2.Header.Revision
		missing := r.Key("txn", "cmp-missing")
		cases := []struct {
			name string
			cmp  clientv3.Cmp
			want bool
		}{
			{"value =", clientv3.Compare(clientv3.Value(k), "=", "m"), true},
			{"value !=", clientv3.Compare(clientv3.Value(k), "!=", "m"), false},
			{"value >", clientv3.Compare(clientv3.Value(k), ">", "a"), true},
			{"value <", clientv3.Compare(clientv3.Value(k), "<", "a"), false},
			{"version =", clientv3.Compare(clientv3.Version(k), "=", 2), true},
			{"version >", clientv3.Compare(clientv3.Version(k), ">", 2), false},
			{"create =", clientv3.Compare(clientv3.CreateRevision(k), "=", cr), true},
			{"create <", clientv3.Compare(clientv3.CreateRevision(k), "<", mr), true},
			{"mod =", clientv3.Compare(clientv3.ModRevision(k), "=", mr), true},
			{"mod !=", clientv3.Compare(clientv3.ModRevision(k), "!=", mr), false},
			{"mod > older", clientv3.Compare(clientv3.ModRevision(k), ">", cr), true},
			{"lease = 0", clientv3.Compare(clientv3.LeaseValue(k), "=", clientv3.NoLease), true},
			{"missing version = 0", clientv3.Compare(clientv3.Version(missing), "=", 0), true},
			{"missing create = 0", clientv3.Compare(clientv3.CreateRevision(missing), "=", 0), true},
			{"missing mod > 0", clientv3.Compare(clientv3.ModRevision(missing), ">", 0), false},
			// etcd: a value compare against a key that does not exist is false, whatever the operator.
			{"missing value =", clientv3.Compare(clientv3.Value(missing), "=", ""), false},
			{"missing value !=", clientv3.Compare(clientv3.Value(missing), "!=", "x"), false},
		}
		for _, tc := range cases {
			t, err := c.Txn(ctx).If(tc.cmp).Then(clientv3.OpGet(k)).Else(clientv3.OpGet(missing)).Commit()
			if err != nil {
				return errorf("%s: %v", tc.name, err)
			}
			if t.Succeeded != tc.want {
				return errorf("%s: succeeded=%v, want %v", tc.name, t.Succeeded, tc.want)
			}
		}
		// All compares must hold.
		t, err := c.Txn(ctx).If(
			clientv3.Compare(clientv3.Value(k), "=", "m"),
			clientv3.Compare(clientv3.Version(k), "=", 1),
		).Commit()
		if err != nil {
			return err
		}
		if t.Succeeded {
			return errorf("two compares, one false: succeeded")
		}
		return nil
	})

	r.Check("txn.range_compare", func(ctx context.Context) error {
		p := r.Key("txn", "rc") + "/"
		for i := 0; i < 3; i++ {
			if _, err := c.Put(ctx, p+strconv.Itoa(i), "x"); err != nil {
				return err
			}
		}
		t, err := c.Txn(ctx).If(clientv3.Compare(clientv3.Version(p), ">", 0).WithPrefix()).Commit()
		if err != nil {
			return err
		}
		if !t.Succeeded {
			return errorf("version > 0 over a prefix whose keys all exist: not succeeded")
		}
		t, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Value(p), "=", "x").WithRange(p + "2")).Commit()
		if err != nil {
			return err
		}
		if !t.Succeeded {
			return errorf("value = x over [0,2): not succeeded")
		}
		if _, err := c.Put(ctx, p+"1", "y"); err != nil {
			return err
		}
		t, err = c.Txn(ctx).If(clientv3.Compare(clientv3.Value(p), "=", "x").WithPrefix()).Commit()
		if err != nil {
			return err
		}
		if t.Succeeded {
			return errorf("value = x over a prefix where one key is y: succeeded")
		}
		return nil
	})

	r.Check("txn.multi_op_one_revision", func(ctx context.Context) error {
		p := r.Key("txn", "multi") + "/"
		t, err := c.Txn(ctx).Then(
			clientv3.OpPut(p+"a", "1"),
			clientv3.OpPut(p+"b", "2"),
			clientv3.OpGet(p, clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return err
		}
		if !t.Succeeded || len(t.Responses) != 3 {
			return errorf("succeeded=%v responses=%d", t.Succeeded, len(t.Responses))
		}
		rev := t.Header.Revision
		// A read inside the txn sees the txn's own writes.
		rr := t.Responses[2].GetResponseRange()
		if rr == nil {
			return errorf("third response is not a range: %v", t.Responses[2])
		}
		if err := wantKeys(rr.Kvs, []string{p + "a", p + "b"}, []string{"1", "2"}); err != nil {
			return errorf("range inside the txn: %v", err)
		}
		gr, err := c.Get(ctx, p, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		for _, kv := range gr.Kvs {
			if kv.ModRevision != rev || kv.CreateRevision != rev {
				return errorf("keys written by one txn at different revisions: %s, txn revision %d", kvSummary(gr.Kvs), rev)
			}
		}
		empty, err := c.Txn(ctx).Commit()
		if err != nil {
			return err
		}
		if !empty.Succeeded || len(empty.Responses) != 0 || empty.Header.Revision != rev {
			return errorf("empty txn: succeeded=%v responses=%d revision=%d (want true 0 %d)", empty.Succeeded, len(empty.Responses), empty.Header.Revision, rev)
		}
		return nil
	})

	r.Check("txn.nested", func(ctx context.Context) error {
		k := r.Key("txn", "nested")
		t, err := c.Txn(ctx).Then(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(k, "inner")},
			[]clientv3.Op{clientv3.OpGet(k)},
		)).Commit()
		if err != nil {
			return err
		}
		inner := t.Responses[0].GetResponseTxn()
		if inner == nil || !inner.Succeeded || len(inner.Responses) != 1 || inner.Responses[0].GetResponsePut() == nil {
			return errorf("inner txn response %v", t.Responses[0])
		}
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		return wantKV(gr.Kvs[0], k, "inner", t.Header.Revision, t.Header.Revision, 1)
	})
}
