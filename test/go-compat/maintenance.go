package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

var versionRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)`)

// maintenanceChecks: Status (kube-apiserver's and etcdctl's health and version probe) and alarms.
func maintenanceChecks(r *Runner) {
	c := r.c
	r.Check("maintenance.status", func(ctx context.Context) error {
		ep := c.Endpoints()[0]
		s, err := c.Status(ctx, ep)
		if err != nil {
			return err
		}
		if err := wantHeader(s.Header); err != nil {
			return err
		}
		m := versionRE.FindStringSubmatch(s.Version)
		if m == nil {
			return errorf("version %q does not parse as major.minor.patch", s.Version)
		}
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		if major != 3 || minor < 4 {
			return errorf("version %q, want 3.4 or later", s.Version)
		}
		if s.Leader == 0 || s.Leader != s.Header.MemberId {
			return errorf("leader=%d member=%d: a one-member cluster leads itself", s.Leader, s.Header.MemberId)
		}
		if s.DbSize <= 0 || s.RaftIndex == 0 || s.RaftTerm == 0 {
			return errorf("db_size=%d raft_index=%d raft_term=%d, want all > 0", s.DbSize, s.RaftIndex, s.RaftTerm)
		}
		if len(s.Errors) != 0 || s.IsLearner {
			return errorf("errors=%q is_learner=%v", s.Errors, s.IsLearner)
		}
		return nil
	})

	// kube-apiserver passes its --etcd-servers URLs (http://host:port) to Status unchanged;
	// clientv3 dials them as given, so :authority is the whole URL.
	r.Check("maintenance.url_endpoint", func(ctx context.Context) error {
		ep := c.Endpoints()[0]
		if !strings.Contains(ep, "://") {
			ep = "http://" + ep
		}
		s, err := c.Status(ctx, ep)
		if err != nil {
			return errorf("Status(%q): %v", ep, err)
		}
		if err := wantHeader(s.Header); err != nil {
			return err
		}
		if _, err := c.HashKV(ctx, ep, 0); err != nil {
			return errorf("HashKV(%q): %v", ep, err)
		}
		if _, err := c.Defragment(ctx, ep); err != nil {
			return errorf("Defragment(%q): %v", ep, err)
		}
		return nil
	})

	r.Check("maintenance.alarm_list", func(ctx context.Context) error {
		a, err := c.AlarmList(ctx)
		if err != nil {
			return err
		}
		if len(a.Alarms) != 0 {
			return errorf("alarms %v, want none", a.Alarms)
		}
		// etcd 3.4 sends no header here, 3.5 fills one.
		if a.Header != nil {
			return wantHeader(a.Header)
		}
		return nil
	})

	// NOSPACE as a Go caller meets it: err == rpctypes.ErrNoSpace on Put, the alarm in AlarmList,
	// AlarmDisarm clears it. Raised through the raw Alarm RPC (clientv3 has no call for that) in
	// the name of a member that does not exist, so nothing else can raise or clear it meanwhile.
	r.Check("maintenance.alarm_nospace", func(ctx context.Context) error {
		const member = uint64(0x7067657463640042)
		m := pb.NewMaintenanceClient(c.ActiveConnection())
		if _, err := m.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: member, Alarm: pb.AlarmType_NOSPACE}); err != nil {
			return errorf("activate: %v", err)
		}
		disarmed := false
		defer func() {
			if !disarmed {
				c.AlarmDisarm(context.Background(), &clientv3.AlarmMember{MemberID: member, Alarm: pb.AlarmType_NOSPACE})
			}
		}()
		// Every instance refuses within a notification's delay; requests are balanced over them.
		var err error
		for i := 0; i < 100; i++ {
			if _, err = c.Put(ctx, "/go/nospace", "x"); err == rpctypes.ErrNoSpace {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := wantErr(err, rpctypes.ErrNoSpace); err != nil {
			return err
		}
		if _, err := c.Grant(ctx, 60); err != rpctypes.ErrNoSpace {
			return errorf("Grant under NOSPACE: %v", err)
		}
		if _, err := c.Get(ctx, "/go/nospace"); err != nil {
			return errorf("Get under NOSPACE: %v", err)
		}
		a, err := c.AlarmList(ctx)
		if err != nil {
			return err
		}
		found := false
		for _, x := range a.Alarms {
			found = found || (x.MemberID == member && x.Alarm == pb.AlarmType_NOSPACE)
		}
		if !found {
			return errorf("alarms %v, want member %x NOSPACE", a.Alarms, member)
		}
		if _, err := c.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: member, Alarm: pb.AlarmType_NOSPACE}); err != nil {
			return errorf("disarm: %v", err)
		}
		disarmed = true
		// Writes come back on every instance: ten puts in a row succeed.
		ok := 0
		for i := 0; i < 250 && ok < 10; i++ {
			if _, err = c.Put(ctx, "/go/nospace", "y"); err == nil {
				ok++
			} else {
				ok = 0
				time.Sleep(20 * time.Millisecond)
			}
		}
		if ok < 10 {
			return errorf("puts after disarm: %v", err)
		}
		return nil
	})
}

// clusterChecks: MemberList, and a client that syncs its endpoints from it.
func clusterChecks(r *Runner, endpoints []string, logCfg *zap.Config) {
	c := r.c
	r.Check("cluster.member_list", func(ctx context.Context) error {
		ml, err := c.MemberList(ctx)
		if err != nil {
			return err
		}
		if err := wantHeader(ml.Header); err != nil {
			return err
		}
		// One member per running pgetcd instance on the database; the one asked is among them.
		if len(ml.Members) < len(endpoints) {
			return errorf("%d members, want at least %d", len(ml.Members), len(endpoints))
		}
		for _, m := range ml.Members {
			if m.Name == "" || len(m.ClientURLs) == 0 || m.IsLearner {
				return errorf("member %+v", *m)
			}
			if m.ID == ml.Header.MemberId {
				return nil
			}
		}
		return errorf("header member %d is not among %v", ml.Header.MemberId, ml.Members)
	})

	// A client with the advertised URLs from MemberList (clientv3 Sync, etcdctl --discovery or
	// auto-sync) must still reach the server.
	r.Check("cluster.sync_endpoints", func(ctx context.Context) error {
		c2, err := clientv3.New(clientv3.Config{
			Endpoints:   endpoints,
			DialTimeout: 5 * time.Second,
			DialOptions: []grpc.DialOption{grpc.WithBlock()},
			LogConfig:   logCfg,
		})
		if err != nil {
			return err
		}
		defer c2.Close()
		if err := c2.Sync(ctx); err != nil {
			return err
		}
		eps := c2.Endpoints()
		if len(eps) == 0 {
			return errorf("no endpoints after Sync")
		}
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := c2.Get(gctx, r.Key("cluster", "probe")); err != nil {
			return errorf("get through the synced endpoints %q: %v", eps, err)
		}
		return nil
	})
}
