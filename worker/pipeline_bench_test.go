package worker_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
	"github.com/mlsengine/mlsengine/worker"
)

// BenchmarkPipeline measures the worker end to end: one worker and an
// embedded NATS server in this process, file storage in a temporary
// directory, configured as cmd/mlsworker runs them (16 partitions, two past
// epochs kept, the sweeper on). An operation starts when its command is
// published to the log (events.Client.Send) and ends when the bench's
// events.Client has observed every event it must cause; commands are
// pipelined, a window of them in flight per group, so that the rate
// measures the worker and not one round trip. Every expected event is
// counted once: a missing one (no progress for a minute), a duplicate or
// an unexpected one (a rejection, a failed result) fails the benchmark.
//
// Beside each pipeline measurement, Impl=memory does the same operations
// on engine groups over storage/memory, in one goroutine per group as the
// worker has groups in flight in parallel, so that the cost of the log,
// jetstore and the events shows as a ratio:
//
//	Op=app/N=2/Groups=32   application messages (1 KiB) in 32 groups of two
//	                       hosted members, 4 in flight per group: the
//	                       sender's send command to the receiver's app event
//	                       (and the command's result). Memory: Protect then
//	                       Process.
//	Op=app/N=2/Groups=1    the same in one group, 32 in flight.
//	Op=commit/N=10/Groups=4   self-update commits in 4 groups of 10 hosted
//	                       members, 4 in flight per group, always by the same
//	                       member (pipelined commits by others would lose
//	                       their epoch): the command to its result and the
//	                       epoch event of each of the 9 others. Memory:
//	                       SelfUpdate and MergePendingCommit, then Process and
//	                       MergeStagedCommit by the 9 others.
//	Op=commit/N=1000/Groups=1 the same in a group of 1,000 (not with -short):
//	                       10 hosted members at leaves 1, 2, 4, ..., 512,
//	                       and 990 outside members, engine clients of this
//	                       test that process nothing; leaf 1 commits, and
//	                       the 9 other hosted members' epoch events end the
//	                       operation: the hosted side only. Each hosted
//	                       member but leaf 1 commits once in setup, so that
//	                       no node of leaf 1's copath is blank and its
//	                       commits encrypt 10 path secrets, as in a group
//	                       whose members have all committed. Memory: the
//	                       same group.
//
// The group of 1,000 is created by an outside member (leaf 0) that adds
// everyone in one commit and publishes the Welcome to the hosted members'
// Welcome subjects. It cannot be built with create-group and add commands:
// an add's outputs (its commit and a Welcome for the outside clients and
// for each hosted member it adds, each with the ratchet tree, about 180
// bytes a member) are kept in the group's cursor, which engine.MaxCursorLen
// bounds to 192 KiB, so an add to a group past about 1,000 members (fewer
// with many key packages or hosted members in it) can never be applied.
//
// Metrics (benchstat compares them; -benchtime sets how many operations):
//
//	msgs/s, commits/s   operations completed per second
//	p50-ms, p99-ms      latency of an operation (queueing included)
//	x-time              pipeline time per operation over memory's (memory
//	                    runs first)
//	nats/op             messages the worker's connection sent to the server
//	                    (requests, publishes, acknowledgements, pulls)
//	units/op, erase/op  jetstore units committed and erasures, counted
//	                    through jetstore.Hooks
//
// With -v the benchmark logs a table of the medians over -count runs.
// MLS_BENCH_TAP=1 also counts every message the server carries by kind of
// subject (a subscriber on ">", which costs the server some throughput) and
// logs them per operation. Run it with make bench-pipeline.
func BenchmarkPipeline(b *testing.B) {
	pb := startPipeBench(b)
	for _, sc := range pipeScenarios {
		if sc.long && testing.Short() {
			continue
		}
		b.Run(sc.name, func(b *testing.B) {
			b.Run("Impl=memory", func(b *testing.B) { pb.runMemory(b, sc) })
			b.Run("Impl=pipeline", func(b *testing.B) { pb.runPipeline(b, sc) })
		})
	}
	pb.logTable(b)
}

// scenario is one kind of operation in groups of one shape.
type scenario struct {
	name   string
	label  string // for the table
	commit bool   // self-update commits; otherwise application messages
	groups int
	size   int   // members of each group
	hosted []int // leaves of hosted members (nil: all); the first sends or commits
	// outsideCreator: leaf 0 is an outside member that created the group
	// and added everyone; otherwise hosted leaf 0 did, with an add command.
	outsideCreator bool
	window         int  // operations in flight per group
	fill           bool // each hosted member but the first commits once in setup
	long           bool // skipped with -short
}

var pipeScenarios = []*scenario{
	{name: "Op=app/N=2/Groups=32", label: "app msg, 32 groups of 2, 4 in flight each", groups: 32, size: 2, window: 4},
	{name: "Op=app/N=2/Groups=1", label: "app msg, 1 group of 2, 32 in flight", groups: 1, size: 2, window: 32},
	{name: "Op=commit/N=10/Groups=4", label: "commit, 4 groups of 10, 4 in flight each", commit: true, groups: 4, size: 10, window: 4},
	{name: "Op=commit/N=1000/Groups=1", label: "commit, 1 group of 1000 (10 hosted), 4 in flight", commit: true, groups: 1, size: 1000,
		hosted: []int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}, outsideCreator: true, window: 4, fill: true, long: true},
}

func (sc *scenario) unit() string {
	if sc.commit {
		return "commits/s"
	}
	return "msgs/s"
}

func (sc *scenario) hostedLeaves() []int {
	if sc.hosted != nil {
		return sc.hosted
	}
	out := make([]int, sc.size)
	for i := range out {
		out[i] = i
	}
	return out
}

const (
	appPayload = 1024 // bytes of an application message, its id first
	stallAfter = time.Minute
	setupWait  = 3 * time.Minute
)

var benchRoot = []byte("pipeline-bench-root-key-01234567")

// engineConfig is the members' configuration, the worker's and the
// in-memory groups'.
func engineConfig() engine.Config {
	var cfg engine.Config
	cfg.RatchetTreeExtension = true
	cfg.MaxPastEpochs = 2 // mlsworker's default
	return cfg
}

type pipeBench struct {
	ctx   context.Context
	wnc   *nats.Conn // the worker's connection
	c     *events.Client
	steps *stepCounts
	tap   *tap // nil unless MLS_BENCH_TAP is set
	ids   atomic.Uint64

	mu      sync.Mutex
	pipe    map[*scenario][]*pipeGroup
	mem     map[*scenario][]*memGroup
	outside []*memClientKP
	results map[*scenario]*scenarioResults
}

// scenarioResults keeps the last run of each repetition (a *testing.B
// each) of both implementations.
type scenarioResults struct {
	mem, pipe map[*testing.B]runResult
}

type runResult struct {
	rate, p50, p99             float64
	natsOp, unitsOp, erasureOp float64
}

func startPipeBench(b *testing.B) *pipeBench {
	dir := b.TempDir() // removed after the cleanups below
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	wnc, err := srv.Connect(nats.Name("mlsworker"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(wnc.Close)
	wjs, _ := jetstream.New(wnc)
	pb := &pipeBench{ctx: ctx, wnc: wnc, steps: &stepCounts{n: map[string]uint64{}},
		pipe: map[*scenario][]*pipeGroup{}, mem: map[*scenario][]*memGroup{}, results: map[*scenario]*scenarioResults{}}
	cfg := worker.Config{JS: wjs, Store: jetstore.Options{RootKey: benchRoot, Hooks: &jetstore.Hooks{Step: pb.steps.step}},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	cfg.Engine = engineConfig()
	// MLS_BENCH_BATCH sets Config.Batch (one worker here, so any is safe).
	if v := os.Getenv("MLS_BENCH_BATCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("MLS_BENCH_BATCH: %v", err)
		}
		cfg.Batch = n
	}
	w, err := worker.New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("worker: %v", err)
			}
		case <-time.After(30 * time.Second):
			b.Error("the worker did not stop")
		}
	})
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if pb.c, err = events.NewClient(ctx, js, events.Subjects{}, ""); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pb.c.Close)
	if os.Getenv("MLS_BENCH_TAP") != "" {
		if pb.tap, err = startTap(srv); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pb.tap.nc.Close)
	}
	for deadline := time.Now().Add(30 * time.Second); !w.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the worker is not ready")
		}
	}
	return pb
}

// stepCounts counts the steps of every jetstore unit of the worker's
// stores (jetstore.Hooks): "commit" is a unit's commit point, "erase" an
// erasure.
type stepCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (s *stepCounts) step(name string) error {
	s.mu.Lock()
	s.n[name]++
	s.mu.Unlock()
	return nil
}

func (s *stepCounts) get(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[name]
}

// ---- the pipeline ----

// pipeGroup is a group of hosted members.
type pipeGroup struct {
	id     []byte
	sender string   // the first hosted leaf: sends or commits
	others []string // the other hosted members
	epoch  uint64   // the group's epoch; advanced by its driver only
	sem    chan struct{}
}

// do sends a setup command and waits for its result, which must be OK.
func (pb *pipeBench) do(cmd *events.Command) (*events.Result, error) {
	ctx, cancel := context.WithTimeout(pb.ctx, setupWait)
	defer cancel()
	r, err := pb.c.Do(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if !r.OK {
		return nil, fmt.Errorf("%s by %s: %s: %s", cmd.Kind, cmd.Member, r.Code, r.Error)
	}
	return r, nil
}

// expect subscribes, before what causes them is sent, to n events that
// match; the returned function waits for them.
func (pb *pipeBench) expect(n int, match func(*events.Event) bool) func() error {
	ch, cancel := pb.c.Subscribe(match, n+16)
	return func() error {
		defer cancel()
		timeout := time.After(setupWait)
		for i := range n {
			select {
			case <-ch:
			case <-timeout:
				return fmt.Errorf("%d of %d expected events arrived", i, n)
			}
		}
		return nil
	}
}

// pipeGroups builds (once) the scenario's groups through the worker.
func (pb *pipeBench) pipeGroups(b *testing.B, sc *scenario) []*pipeGroup {
	pb.mu.Lock()
	gs := pb.pipe[sc]
	pb.mu.Unlock()
	if gs != nil {
		return gs
	}
	start := time.Now()
	gs = make([]*pipeGroup, sc.groups)
	if err := parallel(sc.groups, 8, func(i int) (err error) {
		gs[i], err = pb.buildPipeGroup(b, sc)
		return err
	}); err != nil {
		b.Fatalf("setup: %v", err)
	}
	b.Logf("pipeline setup of %d groups of %d: %v", sc.groups, sc.size, time.Since(start).Round(time.Millisecond))
	pb.mu.Lock()
	pb.pipe[sc] = gs
	pb.mu.Unlock()
	return gs
}

// forget drops a scenario's groups after a failed run: their epochs are
// unknown, so the next run builds new ones.
func (pb *pipeBench) forget(sc *scenario) {
	pb.mu.Lock()
	delete(pb.pipe, sc)
	pb.mu.Unlock()
}

func (pb *pipeBench) buildPipeGroup(b *testing.B, sc *scenario) (*pipeGroup, error) {
	prefix := fmt.Sprintf("b%d", pb.ids.Add(1))
	gid := []byte(prefix)
	leaves := sc.hostedLeaves()
	names := map[int]string{}
	for _, l := range leaves {
		names[l] = fmt.Sprintf("%s-l%d", prefix, l)
		if _, err := pb.do(&events.Command{Kind: events.CmdCreateMember, Member: names[l]}); err != nil {
			return nil, err
		}
	}
	kps, err := pb.leafKPs(b, sc, func(l int) (*memClientKP, error) {
		r, err := pb.do(&events.Command{Kind: events.CmdKeyPackages, Member: names[l], Count: 1})
		if err != nil {
			return nil, err
		}
		kp, err := wire.Unmarshal[wire.KeyPackage](r.KeyPackages[0])
		return &memClientKP{kp: kp, encoded: r.KeyPackages[0]}, err
	})
	if err != nil {
		return nil, err
	}
	joiners := map[string]bool{}
	for _, l := range leaves {
		if l != 0 {
			joiners[names[l]] = true
		}
	}
	wait := pb.expect(len(joiners), func(ev *events.Event) bool {
		return ev.Kind == events.EvJoined && string(ev.Group) == string(gid) && joiners[ev.Member]
	})
	if sc.outsideCreator {
		welcome, err := outsideCreate(pb.ctx, gid, kps)
		if err != nil {
			return nil, err
		}
		for m := range joiners {
			if err := pb.c.PublishWelcome(pb.ctx, gid, m, welcome.Bytes()); err != nil {
				return nil, err
			}
		}
	} else {
		if _, err := pb.do(&events.Command{Kind: events.CmdCreateGroup, Member: names[0], Group: gid}); err != nil {
			return nil, err
		}
		var encoded [][]byte
		for _, kp := range kps {
			encoded = append(encoded, kp.encoded)
		}
		if _, err := pb.do(&events.Command{Kind: events.CmdAdd, Member: names[0], Group: gid, KeyPackages: encoded}); err != nil {
			return nil, err
		}
	}
	if err := wait(); err != nil {
		return nil, fmt.Errorf("joining: %w", err)
	}
	epoch := uint64(1)
	if sc.fill {
		for _, l := range leaves[1:] {
			e := epoch + 1
			wait := pb.expect(len(leaves)-1, func(ev *events.Event) bool {
				return string(ev.Group) == string(gid) && ev.Kind == events.EvEpoch && ev.Epoch == e && ev.Member != names[l]
			})
			if _, err := pb.do(&events.Command{Kind: events.CmdSelfUpdate, Member: names[l], Group: gid}); err != nil {
				return nil, err
			}
			if err := wait(); err != nil {
				return nil, fmt.Errorf("self-update of leaf %d: %w", l, err)
			}
			epoch = e
		}
	}
	g := &pipeGroup{id: gid, sender: names[leaves[0]], epoch: epoch, sem: make(chan struct{}, sc.window)}
	for _, l := range leaves[1:] {
		g.others = append(g.others, names[l])
	}
	return g, nil
}

// leafKPs returns the key packages of leaves 1 to size-1 in order: a
// hosted member's from hostedKP, an outside member's otherwise.
func (pb *pipeBench) leafKPs(b *testing.B, sc *scenario, hostedKP func(leaf int) (*memClientKP, error)) ([]*memClientKP, error) {
	hosted := map[int]bool{}
	for _, l := range sc.hostedLeaves() {
		hosted[l] = true
	}
	n := 0
	for l := 1; l < sc.size; l++ {
		if !hosted[l] {
			n++
		}
	}
	outside, err := pb.outsideKPs(b, n)
	if err != nil {
		return nil, err
	}
	var kps []*memClientKP
	for l := 1; l < sc.size; l++ {
		if hosted[l] {
			kp, err := hostedKP(l)
			if err != nil {
				return nil, err
			}
			kps = append(kps, kp)
		} else {
			kps = append(kps, outside[0])
			outside = outside[1:]
		}
	}
	return kps, nil
}

// outsideCreate creates a group as an outside member (leaf 0) and adds
// everyone in one commit; it returns the Welcome. The creator is dropped:
// it processes nothing.
func outsideCreate(ctx context.Context, gid []byte, kps []*memClientKP) (*wire.MLSMessage, error) {
	c, key, err := newMemClient(ctx, "outside-creator")
	if err != nil {
		return nil, err
	}
	cfg := engineConfig()
	cfg.GroupID = gid
	g, err := engine.NewGroup(ctx, c.store, key, &cfg, c.cred)
	if err != nil {
		return nil, err
	}
	var batch []*wire.KeyPackage
	for _, kp := range kps {
		batch = append(batch, kp.kp)
	}
	res, err := g.AddMembers(ctx, batch)
	if err != nil {
		return nil, err
	}
	return res.Welcome, g.MergePendingCommit(ctx)
}

// pipeRun is one run of b.N operations through the worker.
type pipeRun struct {
	n       int
	mu      sync.Mutex
	expect  map[string]*pipeOp // by eventKey
	lat     []time.Duration
	done    int
	err     error
	last    time.Time // of the last expected event
	allDone chan struct{}
	failed  chan struct{}
}

// pipeOp is an operation in flight: its start and the events it awaits.
type pipeOp struct {
	g     *pipeGroup
	start time.Time
	left  int
}

func (r *pipeRun) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
		close(r.failed)
	}
}

// observe counts an event the client delivered at t.
func (r *pipeRun) observe(e *events.Event, t time.Time) {
	key, err := eventKey(e)
	if err != nil {
		r.fail(err)
		return
	}
	r.mu.Lock()
	op := r.expect[key]
	if op == nil {
		r.mu.Unlock()
		r.fail(fmt.Errorf("duplicate or unexpected event %s", key))
		return
	}
	delete(r.expect, key)
	r.last = t
	if op.left--; op.left == 0 {
		r.lat = append(r.lat, t.Sub(op.start))
		<-op.g.sem
		if r.done++; r.done == r.n {
			close(r.allDone)
		}
	}
	r.mu.Unlock()
}

// eventKey names an event as the run expects it; a failed result or any
// other kind of event is an error.
func eventKey(e *events.Event) (string, error) {
	switch e.Kind {
	case events.EvResult:
		if !e.Result.OK {
			return "", fmt.Errorf("%s by %s failed: %s: %s", e.Result.Kind, e.Member, e.Result.Code, e.Result.Error)
		}
		return fmt.Sprintf("result/%s/%s/%d", e.Member, e.Result.ID, e.Result.Epoch), nil
	case events.EvApplication:
		if len(e.Data) != appPayload {
			return "", fmt.Errorf("%s read %d bytes, want %d", e.Member, len(e.Data), appPayload)
		}
		return fmt.Sprintf("app/%s/%d", e.Member, binary.BigEndian.Uint64(e.Data)), nil
	case events.EvEpoch:
		return fmt.Sprintf("epoch/%s/%x/%d", e.Member, e.Group, e.Epoch), nil
	}
	return "", fmt.Errorf("unexpected %s event for %s in epoch %d: %s %s", e.Kind, e.Member, e.Epoch, e.Code, e.Detail)
}

// next makes a group's next command and the keys of the events it must
// cause. Only the group's driver calls it.
func (pb *pipeBench) next(sc *scenario, g *pipeGroup) (*events.Command, []string) {
	id := pb.ids.Add(1)
	if !sc.commit {
		data := make([]byte, appPayload)
		binary.BigEndian.PutUint64(data, id)
		cmd := &events.Command{ID: fmt.Sprintf("s%d", id), Kind: events.CmdSend, Member: g.sender, Group: g.id, Data: data}
		keys := []string{fmt.Sprintf("result/%s/%s/%d", g.sender, cmd.ID, g.epoch)}
		for _, m := range g.others {
			keys = append(keys, fmt.Sprintf("app/%s/%d", m, id))
		}
		return cmd, keys
	}
	g.epoch++
	cmd := &events.Command{ID: fmt.Sprintf("u%d", id), Kind: events.CmdSelfUpdate, Member: g.sender, Group: g.id}
	keys := []string{fmt.Sprintf("result/%s/%s/%d", g.sender, cmd.ID, g.epoch)}
	for _, m := range g.others {
		keys = append(keys, fmt.Sprintf("epoch/%s/%x/%d", m, g.id, g.epoch))
	}
	return cmd, keys
}

func (pb *pipeBench) runPipeline(b *testing.B, sc *scenario) {
	gs := pb.pipeGroups(b, sc)
	members := map[string]bool{}
	for _, g := range gs {
		members[g.sender] = true
		for _, m := range g.others {
			members[m] = true
		}
	}
	r := &pipeRun{n: b.N, expect: map[string]*pipeOp{}, last: time.Now(), allDone: make(chan struct{}), failed: make(chan struct{})}
	ch, cancel := pb.c.Subscribe(func(e *events.Event) bool { return members[e.Member] }, 1<<16)
	defer cancel()
	quit := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case e := <-ch:
				r.observe(e, time.Now())
			case <-quit:
				return
			}
		}
	}()
	stats0, units0, erased0 := pb.wnc.Stats(), pb.steps.get("commit"), pb.steps.get("erase")
	var tap0 map[string]uint64
	if pb.tap != nil {
		tap0 = pb.tap.snapshot()
	}

	b.ResetTimer()
	start := time.Now()
	r.mu.Lock()
	r.last = start
	r.mu.Unlock()
	var drivers sync.WaitGroup
	for i, g := range gs {
		share := b.N / len(gs)
		if i < b.N%len(gs) {
			share++
		}
		drivers.Go(func() {
			for range share {
				select {
				case g.sem <- struct{}{}:
				case <-r.failed:
					return
				}
				cmd, keys := pb.next(sc, g)
				r.mu.Lock()
				op := &pipeOp{g: g, start: time.Now(), left: len(keys)}
				for _, k := range keys {
					r.expect[k] = op
				}
				r.mu.Unlock()
				if err := pb.c.Send(pb.ctx, cmd); err != nil {
					r.fail(err)
					return
				}
			}
		})
	}
	err := r.wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err == nil {
		// Anything more for these members now is a duplicate.
		time.Sleep(100 * time.Millisecond)
	}
	close(quit)
	<-collected
	drivers.Wait()
	if err == nil {
		r.mu.Lock()
		err = r.err
		r.mu.Unlock()
	}
	if err != nil {
		pb.forget(sc)
		b.Fatal(err)
	}
	stats := pb.wnc.Stats()
	n := float64(b.N)
	res := runResult{rate: n / elapsed.Seconds(), p50: percentileMS(r.lat, 0.50), p99: percentileMS(r.lat, 0.99),
		natsOp:    float64(stats.OutMsgs-stats0.OutMsgs) / n,
		unitsOp:   float64(pb.steps.get("commit")-units0) / n,
		erasureOp: float64(pb.steps.get("erase")-erased0) / n}
	b.ReportMetric(res.rate, sc.unit())
	b.ReportMetric(res.p50, "p50-ms")
	b.ReportMetric(res.p99, "p99-ms")
	b.ReportMetric(res.natsOp, "nats/op")
	b.ReportMetric(res.unitsOp, "units/op")
	b.ReportMetric(res.erasureOp, "erase/op")
	if m := pb.median(sc, false); m.rate > 0 {
		b.ReportMetric(m.rate/res.rate, "x-time")
	}
	pb.record(sc, b, res, true)
	if pb.tap != nil {
		b.Logf("NATS messages per operation by subject, all connections (b.N=%d): %s", b.N, pb.tap.perOp(tap0, n))
	}
}

// wait returns once every operation is complete, or an error on a failure
// or when no expected event came for stallAfter.
func (r *pipeRun) wait() error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.allDone:
			return nil
		case <-r.failed:
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.err
		case now := <-t.C:
			r.mu.Lock()
			stalled := now.Sub(r.last) > stallAfter
			done, left := r.done, slices.Sorted(maps.Keys(r.expect))
			r.mu.Unlock()
			if stalled {
				if len(left) > 5 {
					left = left[:5]
				}
				err := fmt.Errorf("%d of %d operations complete, nothing for %v; events missing include %s", done, r.n, stallAfter, strings.Join(left, ", "))
				r.fail(err) // stops the drivers
				return err
			}
		}
	}
}

// ---- in memory ----

// memGroup is the same group as engine members over storage/memory.
type memGroup struct {
	sender *engine.Group
	others []*engine.Group
}

// memClientKP is an engine client of the test with a key package (an
// outside member, or a member of an in-memory group before it joins), or
// a hosted member's key package (no store).
type memClientKP struct {
	store   storage.Backend
	cred    wire.Credential
	kp      *wire.KeyPackage
	encoded []byte
}

func newMemClient(ctx context.Context, name string) (*memClientKP, *ciphersuite.SigningKey, error) {
	suite, err := ciphersuite.Lookup(engine.DefaultSuite)
	if err != nil {
		return nil, nil, err
	}
	key, err := suite.GenerateSigningKey(nil)
	if err != nil {
		return nil, nil, err
	}
	c := &memClientKP{store: memory.New(), cred: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)}}
	cfg := engineConfig()
	if c.kp, err = engine.NewKeyPackage(ctx, c.store, key, &cfg, c.cred, nil); err != nil {
		return nil, nil, err
	}
	if c.encoded, err = wire.Marshal(c.kp); err != nil {
		return nil, nil, err
	}
	return c, key, nil
}

// outsideKPs returns n outside members, made once and shared by every
// group that has outside members (a key package may be added to many).
func (pb *pipeBench) outsideKPs(b *testing.B, n int) ([]*memClientKP, error) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if len(pb.outside) >= n {
		return pb.outside[:n], nil
	}
	start := time.Now()
	out := make([]*memClientKP, n)
	if err := parallel(n, runtime.GOMAXPROCS(0), func(i int) (err error) {
		out[i], _, err = newMemClient(pb.ctx, fmt.Sprintf("outside-%d", i))
		return err
	}); err != nil {
		return nil, err
	}
	b.Logf("%d outside members: %v", n, time.Since(start).Round(time.Millisecond))
	pb.outside = out
	return out, nil
}

func (pb *pipeBench) memGroups(b *testing.B, sc *scenario) []*memGroup {
	pb.mu.Lock()
	gs := pb.mem[sc]
	pb.mu.Unlock()
	if gs != nil {
		return gs
	}
	start := time.Now()
	gs = make([]*memGroup, sc.groups)
	if err := parallel(sc.groups, runtime.GOMAXPROCS(0), func(i int) (err error) {
		gs[i], err = pb.buildMemGroup(b, sc)
		return err
	}); err != nil {
		b.Fatalf("setup: %v", err)
	}
	b.Logf("in-memory setup of %d groups of %d: %v", sc.groups, sc.size, time.Since(start).Round(time.Millisecond))
	pb.mu.Lock()
	pb.mem[sc] = gs
	pb.mu.Unlock()
	return gs
}

// buildMemGroup builds the group as buildPipeGroup does: the same leaves,
// creator and setup commits.
func (pb *pipeBench) buildMemGroup(b *testing.B, sc *scenario) (*memGroup, error) {
	ctx := pb.ctx
	clients := map[int]*memClientKP{}
	var creator *engine.Group
	for _, l := range sc.hostedLeaves() {
		c, key, err := newMemClient(ctx, fmt.Sprintf("hosted-%d", l))
		if err != nil {
			return nil, err
		}
		clients[l] = c
		if l == 0 {
			cfg := engineConfig()
			if creator, err = engine.NewGroup(ctx, c.store, key, &cfg, c.cred); err != nil {
				return nil, err
			}
		}
	}
	if creator == nil {
		c, key, err := newMemClient(ctx, "outside-creator")
		if err != nil {
			return nil, err
		}
		cfg := engineConfig()
		if creator, err = engine.NewGroup(ctx, c.store, key, &cfg, c.cred); err != nil {
			return nil, err
		}
	}
	kps, err := pb.leafKPs(b, sc, func(l int) (*memClientKP, error) { return clients[l], nil })
	if err != nil {
		return nil, err
	}
	var batch []*wire.KeyPackage
	for _, kp := range kps {
		batch = append(batch, kp.kp)
	}
	res, err := creator.AddMembers(ctx, batch)
	if err != nil {
		return nil, err
	}
	if err := creator.MergePendingCommit(ctx); err != nil {
		return nil, err
	}
	var hosted []*engine.Group // in leaf order
	for _, l := range sc.hostedLeaves() {
		if l == 0 {
			hosted = append(hosted, creator)
			continue
		}
		cfg := engineConfig()
		g, err := engine.JoinGroup(ctx, clients[l].store, res.Welcome, &cfg, nil)
		if err != nil {
			return nil, err
		}
		hosted = append(hosted, g)
	}
	if sc.fill {
		for i, g := range hosted[1:] {
			res, err := g.SelfUpdate(ctx, nil)
			if err != nil {
				return nil, err
			}
			if err := g.MergePendingCommit(ctx); err != nil {
				return nil, err
			}
			others := slices.Concat(hosted[:i+1], hosted[i+2:])
			if err := processAll(ctx, others, res.Commit); err != nil {
				return nil, err
			}
		}
		res, err := hosted[0].SelfUpdate(ctx, nil)
		if err != nil {
			return nil, err
		}
		if err := hosted[0].ClearPendingCommit(ctx); err != nil {
			return nil, err
		}
		b.Logf("a commit of the committer in the group of %d: %d bytes", sc.size, len(res.Commit.Bytes()))
	}
	return &memGroup{sender: hosted[0], others: hosted[1:]}, nil
}

// processAll has every group process a commit and merge it.
func processAll(ctx context.Context, gs []*engine.Group, commit *wire.MLSMessage) error {
	for _, g := range gs {
		rm, err := g.Process(ctx, commit)
		if err != nil {
			return err
		}
		if rm.Commit == nil {
			return fmt.Errorf("processed a commit, got no staged commit")
		}
		if err := g.MergeStagedCommit(ctx, rm.Commit); err != nil {
			return err
		}
	}
	return nil
}

// memOp is one in-memory operation: Protect and Process, or a commit
// merged by its committer and processed and merged by the others.
func (pb *pipeBench) memOp(sc *scenario, g *memGroup) error {
	ctx := pb.ctx
	if sc.commit {
		res, err := g.sender.SelfUpdate(ctx, nil)
		if err != nil {
			return err
		}
		if err := g.sender.MergePendingCommit(ctx); err != nil {
			return err
		}
		return processAll(ctx, g.others, res.Commit)
	}
	data := make([]byte, appPayload)
	binary.BigEndian.PutUint64(data, pb.ids.Add(1))
	msg, err := g.sender.Protect(ctx, data, nil)
	if err != nil {
		return err
	}
	for _, o := range g.others {
		rm, err := o.Process(ctx, msg)
		if err != nil {
			return err
		}
		if string(rm.ApplicationData) != string(data) {
			return fmt.Errorf("read another plaintext")
		}
	}
	return nil
}

func (pb *pipeBench) runMemory(b *testing.B, sc *scenario) {
	gs := pb.memGroups(b, sc)
	lats := make([][]time.Duration, len(gs))
	errs := make([]error, len(gs))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, g := range gs {
		share := b.N / len(gs)
		if i < b.N%len(gs) {
			share++
		}
		wg.Go(func() {
			for range share {
				t := time.Now()
				if err := pb.memOp(sc, g); err != nil {
					errs[i] = err
					return
				}
				lats[i] = append(lats[i], time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			pb.mu.Lock()
			delete(pb.mem, sc)
			pb.mu.Unlock()
			b.Fatal(err)
		}
	}
	all := slices.Concat(lats...)
	res := runResult{rate: float64(b.N) / elapsed.Seconds(), p50: percentileMS(all, 0.50), p99: percentileMS(all, 0.99)}
	b.ReportMetric(res.rate, sc.unit())
	b.ReportMetric(res.p50, "p50-ms")
	b.ReportMetric(res.p99, "p99-ms")
	pb.record(sc, b, res, false)
}

// ---- results ----

func percentileMS(lat []time.Duration, q float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := min(len(s)-1, max(0, int(math.Ceil(q*float64(len(s))))-1))
	return float64(s[i]) / float64(time.Millisecond)
}

// record keeps a run's result: the last run of each repetition counts.
func (pb *pipeBench) record(sc *scenario, b *testing.B, r runResult, pipeline bool) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	sr := pb.results[sc]
	if sr == nil {
		sr = &scenarioResults{mem: map[*testing.B]runResult{}, pipe: map[*testing.B]runResult{}}
		pb.results[sc] = sr
	}
	if pipeline {
		sr.pipe[b] = r
	} else {
		sr.mem[b] = r
	}
}

// median is each field's median over the repetitions so far.
func (pb *pipeBench) median(sc *scenario, pipeline bool) (m runResult) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	sr := pb.results[sc]
	if sr == nil {
		return m
	}
	rs := sr.mem
	if pipeline {
		rs = sr.pipe
	}
	if len(rs) == 0 {
		return m
	}
	field := func(f func(runResult) float64) float64 {
		var v []float64
		for _, r := range rs {
			v = append(v, f(r))
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return runResult{
		rate:      field(func(r runResult) float64 { return r.rate }),
		p50:       field(func(r runResult) float64 { return r.p50 }),
		p99:       field(func(r runResult) float64 { return r.p99 }),
		natsOp:    field(func(r runResult) float64 { return r.natsOp }),
		unitsOp:   field(func(r runResult) float64 { return r.unitsOp }),
		erasureOp: field(func(r runResult) float64 { return r.erasureOp }),
	}
}

// logTable logs the medians of every scenario that ran.
func (pb *pipeBench) logTable(b *testing.B) {
	rate := func(v float64) string {
		switch {
		case v == 0:
			return "-"
		case v < 10:
			return fmt.Sprintf("%.2f", v)
		case v < 100:
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.0f", v)
	}
	var sb strings.Builder
	width := len("operation")
	for _, sc := range pipeScenarios {
		width = max(width, len(sc.label))
	}
	row := func(cols ...string) {
		fmt.Fprintf(&sb, "%-*s", width, cols[0])
		for _, c := range cols[1:] {
			fmt.Fprintf(&sb, " %11s", c)
		}
		sb.WriteString("\n")
	}
	row("operation", "pipeline/s", "p50 ms", "p99 ms", "in-memory/s", "ratio", "nats/op", "units/op", "erase/op")
	runs := 0
	for _, sc := range pipeScenarios {
		p, m := pb.median(sc, true), pb.median(sc, false)
		if p.rate == 0 && m.rate == 0 {
			continue
		}
		pb.mu.Lock()
		runs = max(runs, len(pb.results[sc].pipe))
		pb.mu.Unlock()
		ratio := "-"
		if p.rate > 0 && m.rate > 0 {
			ratio = fmt.Sprintf("%.0fx", m.rate/p.rate)
		}
		row(sc.label, rate(p.rate), fmt.Sprintf("%.1f", p.p50), fmt.Sprintf("%.1f", p.p99), rate(m.rate), ratio,
			fmt.Sprintf("%.1f", p.natsOp), fmt.Sprintf("%.1f", p.unitsOp), fmt.Sprintf("%.1f", p.erasureOp))
	}
	b.Logf("medians of %d run(s); ratio = in-memory rate / pipeline rate; the group of 1000: hosted members' side only "+
		"(990 outside members process nothing)\n%s", runs, sb.String())
}

// parallel runs f(i) for i in [0, n), at most limit at a time, and returns
// the first error.
func parallel(n, limit int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, max(1, limit))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- the tap ----

// tap counts every message the server carries, by kind of subject.
type tap struct {
	nc *nats.Conn
	mu sync.Mutex
	n  map[string]uint64
}

func startTap(srv *natsrv.Embedded) (*tap, error) {
	nc, err := srv.Connect(nats.Name("bench-tap"))
	if err != nil {
		return nil, err
	}
	t := &tap{nc: nc, n: map[string]uint64{}}
	sub, err := nc.Subscribe(">", func(m *nats.Msg) {
		c := subjectClass(m.Subject, m.Reply)
		t.mu.Lock()
		t.n[c]++
		t.mu.Unlock()
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	sub.SetPendingLimits(-1, -1)
	return t, nc.Flush()
}

func (t *tap) snapshot() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]uint64, len(t.n))
	for k, v := range t.n {
		out[k] = v
	}
	return out
}

// perOp formats the counts since before, per operation, largest first.
func (t *tap) perOp(before map[string]uint64, n float64) string {
	// The tap's subscription sees messages a little after the server
	// carried them.
	time.Sleep(50 * time.Millisecond)
	now := t.snapshot()
	type kv struct {
		k string
		v float64
	}
	var all []kv
	for k, v := range now {
		if d := v - before[k]; d > 0 {
			all = append(all, kv{k, float64(d) / n})
		}
	}
	slices.SortFunc(all, func(a, b kv) int {
		if a.v != b.v {
			if a.v > b.v {
				return -1
			}
			return 1
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%s %.2f", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

// subjectClass names a message's kind: a JetStream API request, a KV put
// (bucket and record kind), a publish to the log or events, a delivery by a
// consumer (its reply subject is an acknowledgement's), a reply.
func subjectClass(s, reply string) string {
	t := strings.Split(s, ".")
	at := func(i int) string {
		if i < len(t) {
			return t[i]
		}
		return ""
	}
	if r, ok := strings.CutPrefix(reply, "$JS.ACK."); ok {
		stream, _, _ := strings.Cut(r, ".")
		return "delivery " + stream
	}
	switch {
	case t[0] == "_INBOX":
		return "reply"
	case strings.HasPrefix(s, "$JS.API.DIRECT.GET."):
		return "direct-get " + at(4)
	case strings.HasPrefix(s, "$JS.API.STREAM.MSG.DELETE."):
		return "erase " + at(5)
	case strings.HasPrefix(s, "$JS.API.CONSUMER.MSG.NEXT."):
		return "pull"
	case strings.HasPrefix(s, "$JS.API."):
		return "api " + at(2) + "." + at(3)
	case strings.HasPrefix(s, "$JS.ACK."):
		return "ack"
	case strings.HasPrefix(s, "$JS.FC."):
		return "flow-control"
	case strings.HasPrefix(s, "$JS.EVENT."), strings.HasPrefix(s, "$SYS."):
		return "advisory " + at(3)
	case t[0] == "$KV":
		// $KV.<bucket>.<member>.<g.x<id>|c>.<r|h|j|m>... (jetstore) or a
		// bucket of the worker.
		kind := at(4)
		if at(3) == "g" {
			kind = at(5)
		}
		if strings.HasPrefix(at(1), "mls_registry") || strings.HasPrefix(at(1), "mls_parked") {
			return "put " + at(1)
		}
		return "put " + at(1) + " " + kind
	case at(1) == "in":
		return "publish log " + at(3)
	case at(1) == "ev":
		return "publish event " + at(4)
	}
	return t[0]
}
