package main

import (
	"context"
	"strconv"
	"strings"

	"go.etcd.io/etcd/clientv3"
)

// kvChecks covers Put, Get (Range) and Delete as kube-apiserver and Go users call them.
func kvChecks(r *Runner) {
	c := r.c

	r.Check("kv.put_get", func(ctx context.Context) error {
		k := r.Key("kv", "a")
		pr, err := c.Put(ctx, k, "1")
		if err != nil {
			return err
		}
		if err := wantHeader(pr.Header); err != nil {
			return err
		}
		if pr.PrevKv != nil {
			return errorf("put without WithPrevKV returned prev_kv %s", kv1(pr.PrevKv))
		}
		rev := pr.Header.Revision
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		if err := wantHeader(gr.Header); err != nil {
			return err
		}
		if gr.Count != 1 || gr.More || len(gr.Kvs) != 1 {
			return errorf("get: count=%d more=%v kvs=%s, want one kv", gr.Count, gr.More, kvSummary(gr.Kvs))
		}
		if gr.Header.Revision < rev {
			return errorf("get header revision %d < put revision %d", gr.Header.Revision, rev)
		}
		if err := wantKV(gr.Kvs[0], k, "1", rev, rev, 1); err != nil {
			return err
		}
		if gr.Kvs[0].Lease != 0 {
			return errorf("lease = %d, want 0", gr.Kvs[0].Lease)
		}
		miss, err := c.Get(ctx, r.Key("kv", "missing"))
		if err != nil {
			return err
		}
		if miss.Count != 0 || len(miss.Kvs) != 0 || miss.More {
			return errorf("get of a missing key: count=%d kvs=%s more=%v", miss.Count, kvSummary(miss.Kvs), miss.More)
		}
		return nil
	})

	r.Check("kv.put_prev_kv", func(ctx context.Context) error {
		k := r.Key("kv", "prev")
		p1, err := c.Put(ctx, k, "old", clientv3.WithPrevKV())
		if err != nil {
			return err
		}
		if p1.PrevKv != nil {
			return errorf("first put returned prev_kv %s", kv1(p1.PrevKv))
		}
		p2, err := c.Put(ctx, k, "new", clientv3.WithPrevKV())
		if err != nil {
			return err
		}
		if p2.Header.Revision != p1.Header.Revision+1 {
			return errorf("second put revision %d, want %d", p2.Header.Revision, p1.Header.Revision+1)
		}
		if err := wantKV(p2.PrevKv, k, "old", p1.Header.Revision, p1.Header.Revision, 1); err != nil {
			return errorf("prev_kv: %v", err)
		}
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		return wantKV(gr.Kvs[0], k, "new", p1.Header.Revision, p2.Header.Revision, 2)
	})

	// Keys s/a=3, s/b=1 (later 5), s/c=2, created in that order.
	var revA, revB1, revB2, revC int64
	sk := func(n string) string { return r.Key("kv", "s", n) }
	sp := r.Key("kv", "s") + "/"
	ready := r.Check("kv.put_many", func(ctx context.Context) error {
		for _, kv := range []struct {
			k, v string
			rev  *int64
		}{{"a", "3", &revA}, {"b", "1", &revB1}, {"c", "2", &revC}, {"b", "5", &revB2}} {
			pr, err := c.Put(ctx, sk(kv.k), kv.v)
			if err != nil {
				return err
			}
			*kv.rev = pr.Header.Revision
		}
		if !(revA < revB1 && revB1 < revC && revC < revB2) {
			return errorf("revisions not increasing: a=%d b=%d c=%d b'=%d", revA, revB1, revC, revB2)
		}
		return nil
	})
	if !ready {
		for _, n := range []string{"prefix", "limit", "revision", "sort", "count_only", "keys_only", "serializable", "range_end", "from_key", "mod_rev_filters", "kube_list_paging", "delete_prev_kv"} {
			r.Skip("kv."+n, "kv.put_many failed")
		}
		return
	}
	abc := []string{sk("a"), sk("b"), sk("c")}

	r.Check("kv.prefix", func(ctx context.Context) error {
		gr, err := c.Get(ctx, sp, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		if gr.Count != 3 || gr.More {
			return errorf("count=%d more=%v, want 3 false", gr.Count, gr.More)
		}
		if err := wantKeys(gr.Kvs, abc, []string{"3", "5", "2"}); err != nil {
			return err
		}
		return wantKV(gr.Kvs[1], sk("b"), "5", revB1, revB2, 2)
	})

	r.Check("kv.limit", func(ctx context.Context) error {
		gr, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithLimit(2))
		if err != nil {
			return err
		}
		if gr.Count != 3 || !gr.More {
			return errorf("count=%d more=%v, want 3 true", gr.Count, gr.More)
		}
		if err := wantKeys(gr.Kvs, abc[:2], nil); err != nil {
			return err
		}
		all, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithLimit(3))
		if err != nil {
			return err
		}
		if all.More || len(all.Kvs) != 3 {
			return errorf("limit equal to count: more=%v kvs=%d, want false 3", all.More, len(all.Kvs))
		}
		return nil
	})

	r.Check("kv.revision", func(ctx context.Context) error {
		old, err := c.Get(ctx, sk("b"), clientv3.WithRev(revB1))
		if err != nil {
			return err
		}
		if len(old.Kvs) != 1 {
			return errorf("at revision %d: kvs=%s", revB1, kvSummary(old.Kvs))
		}
		if err := wantKV(old.Kvs[0], sk("b"), "1", revB1, revB1, 1); err != nil {
			return err
		}
		cur, err := currentRev(ctx, c)
		if err != nil {
			return err
		}
		if old.Header.Revision != cur {
			return errorf("header revision of a historical read = %d, want the current revision %d", old.Header.Revision, cur)
		}
		before, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithRev(revA))
		if err != nil {
			return err
		}
		if before.Count != 1 {
			return errorf("prefix at revision %d: count=%d kvs=%s, want only s/a", revA, before.Count, kvSummary(before.Kvs))
		}
		return wantKeys(before.Kvs, abc[:1], []string{"3"})
	})

	r.Check("kv.sort", func(ctx context.Context) error {
		cases := []struct {
			name   string
			target clientv3.SortTarget
			order  clientv3.SortOrder
			keys   []string
		}{
			{"key desc", clientv3.SortByKey, clientv3.SortDescend, []string{sk("c"), sk("b"), sk("a")}},
			{"value asc", clientv3.SortByValue, clientv3.SortAscend, []string{sk("c"), sk("a"), sk("b")}},
			{"mod desc", clientv3.SortByModRevision, clientv3.SortDescend, []string{sk("b"), sk("c"), sk("a")}},
			{"create asc", clientv3.SortByCreateRevision, clientv3.SortAscend, abc},
			{"create desc", clientv3.SortByCreateRevision, clientv3.SortDescend, []string{sk("c"), sk("b"), sk("a")}},
		}
		for _, tc := range cases {
			gr, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithSort(tc.target, tc.order))
			if err != nil {
				return errorf("%s: %v", tc.name, err)
			}
			if err := wantKeys(gr.Kvs, tc.keys, nil); err != nil {
				return errorf("%s: %v", tc.name, err)
			}
		}
		gr, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend))
		if err != nil {
			return err
		}
		if len(gr.Kvs) != 3 || string(gr.Kvs[0].Key) != sk("b") {
			return errorf("version desc: %s, want s/b first", kvSummary(gr.Kvs))
		}
		// etcd's WithLastRev/WithFirstCreate: sort, then limit.
		last, err := c.Get(ctx, sp, clientv3.WithLastRev()...)
		if err != nil {
			return err
		}
		if err := wantKeys(last.Kvs, []string{sk("b")}, nil); err != nil {
			return errorf("WithLastRev: %v", err)
		}
		if last.Count != 3 || !last.More {
			return errorf("WithLastRev: count=%d more=%v, want 3 true", last.Count, last.More)
		}
		first, err := c.Get(ctx, sp, clientv3.WithFirstCreate()...)
		if err != nil {
			return err
		}
		return wantKeys(first.Kvs, []string{sk("a")}, nil)
	})

	r.Check("kv.count_only", func(ctx context.Context) error {
		gr, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		if gr.Count != 3 || len(gr.Kvs) != 0 || gr.More {
			return errorf("count=%d kvs=%s more=%v, want 3, none, false", gr.Count, kvSummary(gr.Kvs), gr.More)
		}
		return nil
	})

	r.Check("kv.keys_only", func(ctx context.Context) error {
		gr, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		if err := wantKeys(gr.Kvs, abc, []string{"", "", ""}); err != nil {
			return err
		}
		if b := gr.Kvs[1]; b.ModRevision != revB2 || b.CreateRevision != revB1 || b.Version != 2 {
			return errorf("keys-only kv lost its metadata: %s", kvSummary(gr.Kvs))
		}
		return nil
	})

	r.Check("kv.serializable", func(ctx context.Context) error {
		gr, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithSerializable())
		if err != nil {
			return err
		}
		if err := wantHeader(gr.Header); err != nil {
			return err
		}
		return wantKeys(gr.Kvs, abc, []string{"3", "5", "2"})
	})

	r.Check("kv.range_end", func(ctx context.Context) error {
		gr, err := c.Get(ctx, sk("a"), clientv3.WithRange(sk("c")))
		if err != nil {
			return err
		}
		return wantKeys(gr.Kvs, abc[:2], nil)
	})

	r.Check("kv.from_key", func(ctx context.Context) error {
		gr, err := c.Get(ctx, sk("b"), clientv3.WithFromKey(), clientv3.WithLimit(2))
		if err != nil {
			return err
		}
		if err := wantKeys(gr.Kvs, abc[1:], nil); err != nil {
			return err
		}
		if gr.Count < 2 {
			return errorf("count=%d, want >= 2", gr.Count)
		}
		return nil
	})

	r.Check("kv.mod_rev_filters", func(ctx context.Context) error {
		gr, err := c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithMinModRev(revC))
		if err != nil {
			return err
		}
		if err := wantKeys(gr.Kvs, abc[1:], nil); err != nil {
			return errorf("min mod %d: %v", revC, err)
		}
		gr, err = c.Get(ctx, sp, clientv3.WithPrefix(), clientv3.WithMaxCreateRev(revA))
		if err != nil {
			return err
		}
		return wantKeys(gr.Kvs, abc[:1], nil)
	})

	// kube-apiserver's paginated list: limit, then continue from the last key + "\x00" at the
	// revision of the first page, while the keys keep changing.
	r.Check("kv.kube_list_paging", func(ctx context.Context) error {
		end := clientv3.GetPrefixRangeEnd(sp)
		p1, err := c.Get(ctx, sp, clientv3.WithRange(end), clientv3.WithLimit(1))
		if err != nil {
			return err
		}
		rev := p1.Header.Revision
		if err := wantKeys(p1.Kvs, abc[:1], nil); err != nil {
			return errorf("page 1: %v", err)
		}
		if !p1.More || p1.Count != 3 {
			return errorf("page 1: more=%v count=%d, want true 3", p1.More, p1.Count)
		}
		if _, err := c.Put(ctx, sk("c"), "changed"); err != nil {
			return err
		}
		if _, err := c.Put(ctx, sk("bb"), "new"); err != nil {
			return err
		}
		p2, err := c.Get(ctx, string(p1.Kvs[0].Key)+"\x00", clientv3.WithRange(end), clientv3.WithLimit(1), clientv3.WithRev(rev))
		if err != nil {
			return err
		}
		if err := wantKeys(p2.Kvs, abc[1:2], []string{"5"}); err != nil {
			return errorf("page 2: %v", err)
		}
		if !p2.More || p2.Count != 2 {
			return errorf("page 2: more=%v count=%d, want true 2", p2.More, p2.Count)
		}
		p3, err := c.Get(ctx, string(p2.Kvs[0].Key)+"\x00", clientv3.WithRange(end), clientv3.WithLimit(1), clientv3.WithRev(rev))
		if err != nil {
			return err
		}
		if err := wantKeys(p3.Kvs, abc[2:], []string{"2"}); err != nil {
			return errorf("page 3 (at revision %d, before s/c changed and s/bb appeared): %v", rev, err)
		}
		if p3.More || p3.Count != 1 {
			return errorf("page 3: more=%v count=%d, want false 1", p3.More, p3.Count)
		}
		return nil
	})

	r.Check("kv.delete_prev_kv", func(ctx context.Context) error {
		dr, err := c.Delete(ctx, sp, clientv3.WithPrefix(), clientv3.WithPrevKV())
		if err != nil {
			return err
		}
		if err := wantHeader(dr.Header); err != nil {
			return err
		}
		if dr.Deleted != 4 {
			return errorf("deleted=%d, want 4", dr.Deleted)
		}
		if err := wantKeys(dr.PrevKvs, []string{sk("a"), sk("b"), sk("bb"), sk("c")}, []string{"3", "5", "new", "changed"}); err != nil {
			return errorf("prev_kvs: %v", err)
		}
		gr, err := c.Get(ctx, sp, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		if gr.Count != 0 || len(gr.Kvs) != 0 {
			return errorf("after delete: count=%d kvs=%s", gr.Count, kvSummary(gr.Kvs))
		}
		if gr.Header.Revision != dr.Header.Revision {
			return errorf("get after delete at revision %d, delete answered %d", gr.Header.Revision, dr.Header.Revision)
		}
		again, err := c.Delete(ctx, sp, clientv3.WithPrefix(), clientv3.WithPrevKV())
		if err != nil {
			return err
		}
		if again.Deleted != 0 || len(again.PrevKvs) != 0 {
			return errorf("second delete: deleted=%d prev_kvs=%s", again.Deleted, kvSummary(again.PrevKvs))
		}
		if again.Header.Revision != dr.Header.Revision {
			return errorf("deleting nothing moved the revision from %d to %d", dr.Header.Revision, again.Header.Revision)
		}
		single, err := c.Delete(ctx, r.Key("kv", "prev"))
		if err != nil {
			return err
		}
		if single.Deleted != 1 || single.PrevKvs != nil {
			return errorf("single delete without prev kv: deleted=%d prev_kvs=%s", single.Deleted, kvSummary(single.PrevKvs))
		}
		return nil
	})

	r.Check("kv.ignore_value", func(ctx context.Context) error {
		k := r.Key("kv", "iv")
		p1, err := c.Put(ctx, k, "keep")
		if err != nil {
			return err
		}
		p2, err := c.Put(ctx, k, "", clientv3.WithIgnoreValue(), clientv3.WithPrevKV())
		if err != nil {
			return err
		}
		if err := wantKV(p2.PrevKv, k, "keep", p1.Header.Revision, p1.Header.Revision, 1); err != nil {
			return errorf("prev_kv: %v", err)
		}
		gr, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		return wantKV(gr.Kvs[0], k, "keep", p1.Header.Revision, p2.Header.Revision, 2)
	})

	// Keys and values are bytes: NUL, 0xff and non-UTF-8 must round-trip and sort bytewise.
	r.Check("kv.binary_keys", func(ctx context.Context) error {
		p := r.Key("kv", "bin") + "/"
		val := make([]byte, 256)
		for i := range val {
			val[i] = byte(i)
		}
		keys := []string{p + "\x00", p + "\x7f", p + "\xc3\x28", p + "\xff", p + "\xff\xff"}
		for _, k := range keys {
			if _, err := c.Put(ctx, k, string(val)); err != nil {
				return errorf("put %q: %v", k, err)
			}
		}
		gr, err := c.Get(ctx, p, clientv3.WithPrefix())
		if err != nil {
			return err
		}
		if err := wantKeys(gr.Kvs, keys, nil); err != nil {
			return err
		}
		for _, kv := range gr.Kvs {
			if string(kv.Value) != string(val) {
				return errorf("value of %q did not round-trip: %x", kv.Key, kv.Value)
			}
		}
		ff, err := c.Get(ctx, p+"\xff", clientv3.WithPrefix())
		if err != nil {
			return err
		}
		return wantKeys(ff.Kvs, keys[3:], nil)
	})

	// Values near the request limit and a range response far over gRPC's default 4 MiB.
	r.Check("kv.large_values", func(ctx context.Context) error {
		p := r.Key("kv", "large") + "/"
		big := strings.Repeat("v", 1024*1024)
		for i := 0; i < 5; i++ {
			if _, err := c.Put(ctx, p+strconv.Itoa(i), big); err != nil {
				return errorf("put of a 1 MiB value: %v", err)
			}
		}
		gr, err := c.Get(ctx, p, clientv3.WithPrefix())
		if err != nil {
			return errorf("5 MiB range response: %v", err)
		}
		if len(gr.Kvs) != 5 {
			return errorf("got %d kvs, want 5", len(gr.Kvs))
		}
		for _, kv := range gr.Kvs {
			if len(kv.Value) != len(big) {
				return errorf("value of %q has %d bytes, want %d", kv.Key, len(kv.Value), len(big))
			}
		}
		_, err = c.Delete(ctx, p, clientv3.WithPrefix())
		return err
	})

	// etcdctl get "" --prefix / --from-key: clientv3 turns the empty key into "\x00".
	r.Check("kv.whole_keyspace", func(ctx context.Context) error {
		all, err := c.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return errorf("prefix of the empty key: %v", err)
		}
		from, err := c.Get(ctx, "", clientv3.WithFromKey(), clientv3.WithCountOnly())
		if err != nil {
			return errorf("from the empty key: %v", err)
		}
		ours, err := c.Get(ctx, r.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return err
		}
		if ours.Count == 0 || all.Count < ours.Count || from.Count != all.Count {
			return errorf("counts: whole keyspace by prefix %d, from key %d, this run's keys %d", all.Count, from.Count, ours.Count)
		}
		first, err := c.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithLimit(1), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		if len(first.Kvs) != 1 || !first.More {
			return errorf("first key of the keyspace: %s more=%v", kvSummary(first.Kvs), first.More)
		}
		return nil
	})
}
