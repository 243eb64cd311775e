package engine_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// BenchmarkJetStore measures an engine operation on the memory backend and
// on jetstore (an embedded file-store server on this machine, reached over
// TCP on 127.0.0.1), in groups of 10, 1,000 and 50,000 members built as for
// the other benchmarks. Sub-benchmarks are Op=<op>/N=<members>/Backend=<b>;
// memory runs first so that jetstore can report its ratios:
//
//	req/op      requests: backend calls for memory; round trips to the
//	            server for jetstore (batches, reads, erasures, purges)
//	wB/op       bytes written: names and values of the units' puts for
//	            memory; subjects and payloads sent to the server for
//	            jetstore (sealed values, heads, journals, snapshot records)
//	erase/op    erasures (jetstore)
//	x-time, x-req, x-wB   jetstore's time, requests and bytes divided by
//	            memory's in the same run
//
// The ops: commit (alice.SelfUpdate then MergePendingCommit, one epoch per
// iteration), join (JoinGroup from a Welcome, the tree out of band; the
// group deleted outside the measurement), send (alice.Protect of 1 KiB) and
// receive (bob.Process of such a message) and load (LoadGroup of alice's
// group, as a worker without a cached handle). Run it with make
// bench-jetstore.
func BenchmarkJetStore(b *testing.B) {
	srv, err := natsrv.StartEmbedded(context.Background(), natsrv.EmbeddedOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	jb := &jetBench{srv: srv, mem: map[string]benchResult{}}
	ops := []struct {
		name string
		run  func(b *testing.B, s *benchSetup, be *benchBackend)
	}{
		{"commit", jetBenchCommit},
		{"join", jetBenchJoin},
		{"send", jetBenchSend},
		{"receive", jetBenchReceive},
		{"load", jetBenchLoad},
	}
	sizes := []int{10, 1000, 50000}
	if testing.Short() {
		sizes = []int{10, 1000}
	}
	if env := os.Getenv("MLS_BENCH_SIZES"); env != "" { // e.g. "10000" or "10,10000"
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 2 {
				b.Fatalf("MLS_BENCH_SIZES: %q", f)
			}
			sizes = append(sizes, n)
		}
	}
	for _, op := range ops {
		b.Run("Op="+op.name, func(b *testing.B) {
			for _, n := range sizes {
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
					s := getBenchSetup(b, n)
					for _, kind := range []string{"memory", "jetstore"} {
						b.Run("Backend="+kind, func(b *testing.B) {
							be := jb.backend(b, kind)
							op.run(b, s, be)
							jb.report(b, fmt.Sprintf("%s/%d", op.name, n), be)
						})
					}
				})
			}
		})
	}
}

type jetBench struct {
	srv *natsrv.Embedded
	mu  sync.Mutex
	n   int
	mem map[string]benchResult
}

type benchResult struct{ nsPerOp, req, wB float64 }

// benchBackend is a fresh backend for one sub-benchmark, with its counters.
type benchBackend struct {
	storage.Backend
	kind    string
	js      *jetstore.Store
	cm      costMeter
	cb      *countingBackend
	on      bool
	base    jetstore.Stats
	acc     jetstore.Stats
	elapsed time.Duration
	began   time.Time
	ops     int
}

func (jb *jetBench) backend(b *testing.B, kind string) *benchBackend {
	be := &benchBackend{kind: kind}
	if kind == "memory" {
		be.Backend = memory.New()
	} else {
		jb.mu.Lock()
		jb.n++
		member := fmt.Sprintf("bench%d", jb.n)
		jb.mu.Unlock()
		nc, err := jb.srv.Connect()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		s, err := jetstore.Open(context.Background(), js, jetstore.Options{Member: member, RootKey: jetRoot, SweepInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		be.Backend, be.js = s, s
	}
	be.cb = be.cm.wrap(be.Backend)
	return be
}

func (be *benchBackend) start() {
	be.cm.start(be.cb)
	if be.js != nil {
		be.base = be.js.Stats()
	}
	be.began = time.Now()
}

func (be *benchBackend) stop() {
	be.elapsed += time.Since(be.began)
	be.ops++
	be.cm.stop(be.cb)
	if be.js != nil {
		s := be.js.Stats()
		be.acc.Requests += s.Requests - be.base.Requests
		be.acc.Bytes += s.Bytes - be.base.Bytes
		be.acc.Erased += s.Erased - be.base.Erased
	}
}

func (jb *jetBench) report(b *testing.B, key string, be *benchBackend) {
	if be.ops == 0 {
		return
	}
	n := float64(be.ops)
	r := benchResult{nsPerOp: float64(be.elapsed.Nanoseconds()) / n}
	if be.js == nil {
		r.req, r.wB = float64(be.cm.total.reqs)/n, float64(be.cm.total.wBytes)/n
		jb.mu.Lock()
		jb.mem[key] = r
		jb.mu.Unlock()
	} else {
		r.req, r.wB = float64(be.acc.Requests)/n, float64(be.acc.Bytes)/n
		b.ReportMetric(float64(be.acc.Erased)/n, "erase/op")
		jb.mu.Lock()
		m, ok := jb.mem[key]
		jb.mu.Unlock()
		if ok && m.nsPerOp > 0 {
			b.ReportMetric(r.nsPerOp/m.nsPerOp, "x-time")
			if m.req > 0 {
				b.ReportMetric(r.req/m.req, "x-req")
			}
			if m.wB > 0 {
				b.ReportMetric(r.wB/m.wB, "x-wB")
			}
		}
	}
	b.ReportMetric(r.req, "req/op")
	b.ReportMetric(r.wB, "wB/op")
}

// handle copies m's group (CopyTo takes the signature key along) into be
// and loads it from there.
func (be *benchBackend) handle(b *testing.B, m *member) *engine.Group {
	ctx := context.Background()
	if err := m.g.CopyTo(ctx, be.Backend); err != nil {
		b.Fatal(err)
	}
	g, err := engine.LoadGroup(ctx, be.cb, m.g.GroupID(), m.cfg)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func jetBenchCommit(b *testing.B, s *benchSetup, be *benchBackend) {
	ctx := context.Background()
	g := be.handle(b, s.alice)
	for b.Loop() {
		be.start()
		_, err := g.SelfUpdate(ctx, nil)
		if err == nil {
			err = g.MergePendingCommit(ctx)
		}
		be.stop()
		if err != nil {
			b.Fatal(err)
		}
	}
}

func jetBenchJoin(b *testing.B, s *benchSetup, be *benchBackend) {
	ctx := context.Background()
	j := s.joiner
	for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
		rs, err := j.store.List(ctx, storage.ClientScope(), c, "")
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) > 0 {
			if _, err := be.Backend.Apply(ctx, &storage.Unit{Scope: storage.ClientScope(), Puts: rs}); err != nil {
				b.Fatal(err)
			}
		}
	}
	opts := &engine.JoinOptions{RatchetTree: s.tree}
	for b.Loop() {
		be.start()
		g, err := engine.JoinGroup(ctx, be.cb, s.welcome, j.cfg, opts)
		be.stop()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := g.Delete(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func jetBenchSend(b *testing.B, s *benchSetup, be *benchBackend) {
	ctx := context.Background()
	data := make([]byte, 1024)
	g := be.handle(b, s.alice)
	if _, err := g.Protect(ctx, data, nil); err != nil { // derives the secret tree: a one-off
		b.Fatal(err)
	}
	for b.Loop() {
		be.start()
		_, err := g.Protect(ctx, data, nil)
		be.stop()
		if err != nil {
			b.Fatal(err)
		}
	}
}

func jetBenchReceive(b *testing.B, s *benchSetup, be *benchBackend) {
	ctx := context.Background()
	data := make([]byte, 1024)
	sender := benchPure(b, s.alice)
	g := be.handle(b, s.bob)
	first, err := sender.Protect(data, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.Process(ctx, first); err != nil {
		b.Fatal(err)
	}
	var msgs []*wire.MLSMessage
	for b.Loop() {
		if len(msgs) == 0 {
			msgs = protectBatch(b, sender, data)
		}
		be.start()
		rm, err := g.Process(ctx, msgs[0])
		be.stop()
		if err != nil {
			b.Fatal(err)
		}
		if len(rm.ApplicationData) != len(data) {
			b.Fatal("wrong plaintext")
		}
		msgs = msgs[1:]
	}
}

func jetBenchLoad(b *testing.B, s *benchSetup, be *benchBackend) {
	ctx := context.Background()
	g := be.handle(b, s.alice)
	id := g.GroupID()
	for b.Loop() {
		be.start()
		_, err := engine.LoadGroup(ctx, be.cb, id, s.alice.cfg)
		be.stop()
		if err != nil {
			b.Fatal(err)
		}
	}
}
