package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// memberChecks: several pgetcd instances on one database as etcd members. A client that starts
// with one endpoint and AutoSyncInterval (as kube-apiserver's clients can be configured) finds
// every running instance through MemberList, and drops one that stops. The test driving this
// kills an instance after "SYNCED" is printed and then writes a line to stdin.
func memberChecks(r *Runner, endpoints []string, want int, logCfg *zap.Config) {
	if want <= 0 || !r.only["members"] {
		return
	}
	r.Check("members.auto_sync", func(ctx context.Context) error {
		c2, err := clientv3.New(clientv3.Config{
			Endpoints:        endpoints[:1],
			DialTimeout:      5 * time.Second,
			AutoSyncInterval: 200 * time.Millisecond,
			DialOptions:      []grpc.DialOption{grpc.WithBlock()},
			LogConfig:        logCfg,
		})
		if err != nil {
			return err
		}
		defer c2.Close()
		waitFor := func(n int) ([]string, time.Duration, error) {
			t0 := time.Now()
			for time.Since(t0) < 15*time.Second {
				eps := append([]string(nil), c2.Endpoints()...)
				if len(eps) == n {
					sort.Strings(eps)
					return eps, time.Since(t0), nil
				}
				time.Sleep(50 * time.Millisecond)
			}
			return nil, 0, errorf("endpoints %v after 15s, want %d", c2.Endpoints(), n)
		}
		eps, took, err := waitFor(want)
		if err != nil {
			return err
		}
		fmt.Printf("SYNCED %s in %dms\n", strings.Join(eps, ","), took.Milliseconds())
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "killed" {
			return errorf("expected \"killed\" on stdin, got %q (%v)", line, err)
		}
		eps, took, err = waitFor(want - 1)
		if err != nil {
			return err
		}
		fmt.Printf("SYNCED %s in %dms\n", strings.Join(eps, ","), took.Milliseconds())
		// Every request now lands on a live instance.
		for i := 0; i < 30; i++ {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c2.Put(pctx, r.Key("members", fmt.Sprint(i)), "v")
			cancel()
			if err != nil {
				return errorf("put %d through %v: %v", i, c2.Endpoints(), err)
			}
		}
		ml, err := c2.MemberList(ctx)
		if err != nil {
			return err
		}
		if len(ml.Members) != want-1 {
			return errorf("MemberList has %d members, want %d", len(ml.Members), want-1)
		}
		return nil
	})
}
