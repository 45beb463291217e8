// Command rangeclient lists a key range over and over with etcd's Go client (clientv3, the
// client kube-apiserver uses), from -clients goroutines sharing one client, for -seconds after
// -warmup seconds, and prints one JSON line: lists done, errors, and each list's latency in
// microseconds. With -limit it pages like kube-apiserver: each page starts after the last key
// of the one before, at the first page's revision. bench/goclient.ts builds and runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
)

type result struct {
	Lists        int       `json:"lists"`
	Keys         int       `json:"keys"`
	Errors       int       `json:"errors"`
	ErrorSamples []string  `json:"errorSamples"`
	Seconds      float64   `json:"seconds"`
	LatenciesUs  []float64 `json:"latenciesUs"`
}

func list(ctx context.Context, c *clientv3.Client, prefix, end string, limit int64) (int, error) {
	opts := []clientv3.OpOption{clientv3.WithRange(end)}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(limit))
	}
	r, err := c.Get(ctx, prefix, opts...)
	if err != nil {
		return 0, err
	}
	got := len(r.Kvs)
	count := r.Count
	rev := r.Header.Revision
	for r.More {
		if len(r.Kvs) == 0 {
			return got, fmt.Errorf("more=true on a page without kvs")
		}
		next := string(r.Kvs[len(r.Kvs)-1].Key) + "\x00"
		r, err = c.Get(ctx, next, append(opts, clientv3.WithRev(rev))...)
		if err != nil {
			return got, err
		}
		got += len(r.Kvs)
	}
	if int64(got) != count {
		return got, fmt.Errorf("list returned %d keys but count was %d", got, count)
	}
	return got, nil
}

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated host:port")
	prefix := flag.String("prefix", "/bench/range/", "first key")
	end := flag.String("end", "", "range end (default: prefix end)")
	limit := flag.Int64("limit", 0, "page size (0: one request per list)")
	clients := flag.Int("clients", 1, "concurrent listers")
	seconds := flag.Float64("seconds", 10, "measured seconds")
	warmup := flag.Float64("warmup", 1, "unmeasured seconds first")
	flag.Parse()
	rangeEnd := *end
	if rangeEnd == "" {
		rangeEnd = clientv3.GetPrefixRangeEnd(*prefix)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   strings.Split(*endpoints, ","),
		DialTimeout: 10 * time.Second,
		// kube-apiserver's own setting: lists of whole resource types are large.
		MaxCallRecvMsgSize: 1 << 31 - 1,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rangeclient:", err)
		os.Exit(2)
	}
	defer c.Close()

	run := func(d time.Duration, record bool) result {
		var mu sync.Mutex
		res := result{ErrorSamples: []string{}, LatenciesUs: []float64{}}
		stop := time.Now().Add(d)
		start := time.Now()
		var wg sync.WaitGroup
		for i := 0; i < *clients; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					t0 := time.Now()
					n, err := list(ctx, c, *prefix, rangeEnd, *limit)
					us := float64(time.Since(t0).Microseconds())
					cancel()
					mu.Lock()
					if err != nil {
						res.Errors++
						if len(res.ErrorSamples) < 5 {
							res.ErrorSamples = append(res.ErrorSamples, err.Error())
						}
					} else if record {
						res.Lists++
						res.Keys += n
						res.LatenciesUs = append(res.LatenciesUs, us)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		res.Seconds = time.Since(start).Seconds()
		return res
	}
	run(time.Duration(*warmup*float64(time.Second)), false)
	res := run(time.Duration(*seconds*float64(time.Second)), true)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}
