// Command go-compat checks that etcd's Go client (clientv3, the client kube-apiserver uses)
// works unchanged against an etcd v3 endpoint: pgetcd or etcd itself.
//
// Usage: go-compat [-progress-interval 1s] [-only kv,txn] [-v] host:port[,host:port...]
//
// It prints one line per check, "PASS name", "FAIL name: detail" or "SKIP name: reason",
// then a summary line, and exits 1 when any check failed (2 when it could not connect).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/pkg/logutil"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Runner runs named checks against one client and counts the results.
type Runner struct {
	c       *clientv3.Client
	prefix  string // every key a check writes lives under it
	only    map[string]bool
	timeout time.Duration
	pass    int
	fail    int
	skip    int
	// progressInterval is the server's watch progress-notify interval when it was set short
	// for this run (0: unknown, the periodic progress-notify check is skipped).
	progressInterval time.Duration
}

// Check runs f with a deadline and prints its result.
func (r *Runner) Check(name string, f func(ctx context.Context) error) bool {
	if !r.selected(name) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	start := time.Now()
	err := protect(func() error { return f(ctx) })
	if err != nil {
		r.fail++
		fmt.Printf("FAIL %s: %s\n", name, oneLine(err.Error()))
		return false
	}
	r.pass++
	if d := time.Since(start); d > 2*time.Second {
		fmt.Printf("PASS %s (%.1fs)\n", name, d.Seconds())
	} else {
		fmt.Printf("PASS %s\n", name)
	}
	return true
}

// Skip records a check that could not run.
func (r *Runner) Skip(name, reason string) {
	if !r.selected(name) {
		return
	}
	r.skip++
	fmt.Printf("SKIP %s: %s\n", name, reason)
}

func (r *Runner) selected(name string) bool {
	if len(r.only) == 0 {
		return true
	}
	return r.only[strings.SplitN(name, ".", 2)[0]]
}

// Key returns a key under this run's prefix.
func (r *Runner) Key(parts ...string) string { return r.prefix + strings.Join(parts, "/") }

func protect(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return f()
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " | ") }

func main() {
	progress := flag.Duration("progress-interval", 0, "the server's watch progress-notify interval, when set short for this run (enables the periodic progress-notify check)")
	only := flag.String("only", "", "comma separated check groups to run (kv,txn,errors,compact,lease,maintenance,cluster,watch,concurrency,members); default all but members")
	timeout := flag.Duration("timeout", 20*time.Second, "deadline of one check")
	members := flag.Int("members", 0, "with -only members: the number of running instances to discover with AutoSyncInterval (the driver kills one after SYNCED and writes \"killed\" to stdin)")
	verbose := flag.Bool("v", false, "keep clientv3's own warnings (every error answer is logged as a retry warning)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags] host:port[,host:port...]\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	// Several endpoints (comma separated): clientv3 balances requests over them, as
	// kube-apiserver does with --etcd-servers.
	endpoints := strings.Split(flag.Arg(0), ",")

	logCfg := logutil.DefaultZapLoggerConfig
	if !*verbose {
		logCfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	}
	// The settings kube-apiserver uses (staging/src/k8s.io/apiserver/pkg/storage/storagebackend/factory/etcd3.go).
	cfg := clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          10 * time.Second,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		DialOptions:          []grpc.DialOption{grpc.WithBlock()},
		MaxCallSendMsgSize:   2 * 1024 * 1024,
		LogConfig:            &logCfg,
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		fmt.Printf("FAIL connect: %v\n", err)
		os.Exit(2)
	}
	defer c.Close()

	r := &Runner{
		c:                c,
		prefix:           fmt.Sprintf("/gocompat/%d/", time.Now().UnixNano()),
		timeout:          *timeout,
		progressInterval: *progress,
		only:             map[string]bool{},
	}
	for _, g := range strings.Split(*only, ",") {
		if g = strings.TrimSpace(g); g != "" {
			r.only[g] = true
		}
	}

	start := time.Now()
	kvChecks(r)
	txnChecks(r)
	errorChecks(r)
	leaseChecks(r)
	maintenanceChecks(r)
	clusterChecks(r, endpoints, &logCfg)
	memberChecks(r, endpoints, *members, &logCfg)
	watchOK := watchChecks(r)
	compactChecks(r, watchOK) // last but concurrency: compaction discards history other checks read
	concurrencyChecks(r)

	fmt.Printf("summary pass=%d fail=%d skip=%d elapsed=%.1fs\n", r.pass, r.fail, r.skip, time.Since(start).Seconds())
	if r.fail > 0 {
		os.Exit(1)
	}
}
