package main

import (
	"context"
	"fmt"
	"strings"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
	"go.etcd.io/etcd/mvcc/mvccpb"
	"google.golang.org/grpc/status"
)

// wantErr checks that err is exactly the rpctypes value want, the way Go callers test it
// (err == rpctypes.ErrCompacted): this only holds when the server sent etcd's status code and
// message text.
func wantErr(err, want error) error {
	if err == want {
		return nil
	}
	if err == nil {
		return fmt.Errorf("got no error, want %q", want)
	}
	s, _ := status.FromError(err)
	return fmt.Errorf("got error %T code=%v message=%q, want rpctypes error %q (code %v)", err, s.Code(), rpctypes.ErrorDesc(err), want, codeOf(want))
}

func codeOf(err error) interface{} {
	if e, ok := err.(rpctypes.EtcdError); ok {
		return e.Code()
	}
	return status.Code(err)
}

// kvSummary prints key=value@create/mod/version for a failure message.
func kvSummary(kvs []*mvccpb.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = fmt.Sprintf("%s=%q@c%d/m%d/v%d/l%d", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func kv1(kv *mvccpb.KeyValue) string { return kvSummary([]*mvccpb.KeyValue{kv}) }

// wantKeys checks the keys (in order) and values (when vals is not nil) of kvs.
func wantKeys(kvs []*mvccpb.KeyValue, keys []string, vals []string) error {
	ok := len(kvs) == len(keys)
	for i := 0; ok && i < len(kvs); i++ {
		ok = string(kvs[i].Key) == keys[i] && (vals == nil || string(kvs[i].Value) == vals[i])
	}
	if !ok {
		if vals == nil {
			return fmt.Errorf("got %s, want keys %q", kvSummary(kvs), keys)
		}
		return fmt.Errorf("got %s, want keys %q values %q", kvSummary(kvs), keys, vals)
	}
	return nil
}

// wantKV checks one key-value's fields.
func wantKV(kv *mvccpb.KeyValue, key, val string, create, mod, version int64) error {
	if kv == nil {
		return fmt.Errorf("got no kv, want %s=%q", key, val)
	}
	if string(kv.Key) != key || string(kv.Value) != val || kv.CreateRevision != create || kv.ModRevision != mod || kv.Version != version {
		return fmt.Errorf("got %s, want %s=%q@c%d/m%d/v%d", kvSummary([]*mvccpb.KeyValue{kv}), key, val, create, mod, version)
	}
	return nil
}

// wantHeader checks the identity fields every etcd response header carries.
func wantHeader(h *pb.ResponseHeader) error {
	if h == nil {
		return fmt.Errorf("response has no header")
	}
	if h.ClusterId == 0 || h.MemberId == 0 || h.RaftTerm == 0 {
		return fmt.Errorf("header has zero identity fields: %+v", *h)
	}
	return nil
}

// currentRev is the store revision now (the header revision of a read).
func currentRev(ctx context.Context, c *clientv3.Client) (int64, error) {
	resp, err := c.Get(ctx, "/gocompat-revision-probe")
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

func errorf(format string, a ...interface{}) error { return fmt.Errorf(format, a...) }
