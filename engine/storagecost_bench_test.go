package engine_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// storageCostSizes are the group sizes of BenchmarkStorageCost. The group
// of 50,000 members takes about 45 s to build on two cores (once per
// process); -short skips the sizes above 1000.
var storageCostSizes = []int{10, 1000, 10000, 50000}

// storageCost is what a backend was asked to do.
type storageCost struct {
	reqs   int64 // calls of Apply, Load, Version, Get, GetMany and List, failed ones too
	units  int64 // units applied (Apply calls that succeeded)
	recs   int64 // operations of the units applied (storage.Unit.Ops)
	wBytes int64 // name and value bytes of the puts of the units applied
	rBytes int64 // value bytes returned by Load, Get, GetMany and List
}

func (c *storageCost) add(o storageCost) {
	c.reqs += o.reqs
	c.units += o.units
	c.recs += o.recs
	c.wBytes += o.wBytes
	c.rBytes += o.rBytes
}

// familyCost is what the units applied wrote to the records of one name
// family (see nameFamily).
type familyCost struct{ puts, dels, bytes int64 }

// countingBackend counts what an engine asks of a backend while it is on
// (costMeter.start to costMeter.stop). It embeds the Backend and counts
// every method of the interface but Apply's bookkeeping of retries.
type countingBackend struct {
	storage.Backend
	mu   sync.Mutex
	on   bool
	cost storageCost
	// families, if not nil, collects the applied records by name family.
	families map[string]*familyCost
}

func (c *countingBackend) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	v, err := c.Backend.Apply(ctx, u)
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on {
		return v, err
	}
	c.cost.reqs++
	if err != nil {
		return v, err
	}
	c.cost.units++
	c.cost.recs += int64(u.Ops())
	for _, r := range u.Puts {
		n := int64(len(r.Key.Name) + len(r.Value))
		c.cost.wBytes += n
		if f := c.family(r.Key); f != nil {
			f.puts++
			f.bytes += n
		}
	}
	for _, k := range u.Deletes {
		if f := c.family(k); f != nil {
			f.dels++
		}
	}
	return v, nil
}

func (c *countingBackend) Load(ctx context.Context, groupID []byte) (*storage.GroupRecords, error) {
	recs, err := c.Backend.Load(ctx, groupID)
	var n int64
	if recs != nil {
		for _, r := range recs.Records {
			n += int64(len(r.Value))
		}
	}
	c.read(n)
	return recs, err
}

func (c *countingBackend) Get(ctx context.Context, k storage.Key) ([]byte, error) {
	v, err := c.Backend.Get(ctx, k)
	c.read(int64(len(v)))
	return v, err
}

func (c *countingBackend) List(ctx context.Context, scope storage.Scope, class storage.Class, prefix string) ([]storage.Record, error) {
	rs, err := c.Backend.List(ctx, scope, class, prefix)
	var n int64
	for _, r := range rs {
		n += int64(len(r.Value))
	}
	c.read(n)
	return rs, err
}

func (c *countingBackend) GetMany(ctx context.Context, keys []storage.Key) ([]storage.Record, error) {
	rs, err := c.Backend.GetMany(ctx, keys)
	var n int64
	for _, r := range rs {
		n += int64(len(r.Value))
	}
	c.read(n)
	return rs, err
}

func (c *countingBackend) Version(ctx context.Context, groupID []byte) (uint64, error) {
	v, err := c.Backend.Version(ctx, groupID)
	c.read(0)
	return v, err
}

// read counts one read request that returned n value bytes.
func (c *countingBackend) read(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		c.cost.reqs++
		c.cost.rBytes += n
	}
}

// family returns the entry of k's name family, or nil if families are not
// collected. c.mu is held.
func (c *countingBackend) family(k storage.Key) *familyCost {
	if c.families == nil {
		return nil
	}
	name := k.Class.String() + " " + nameFamily(k.Name)
	f := c.families[name]
	if f == nil {
		f = &familyCost{}
		c.families[name] = f
	}
	return f
}

// nameFamily replaces the numbers (epochs, nodes, leaves, generations,
// chunks) and the 16-hex-digit key ids of a record name by "*":
// "epoch/7/ratchet/3/a/12" is in family "epoch/*/ratchet/*/a/*".
func nameFamily(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		digits, hex := true, len(s) == 16
		for _, c := range []byte(s) {
			digits = digits && '0' <= c && c <= '9'
			hex = hex && ('0' <= c && c <= '9' || 'a' <= c && c <= 'f')
		}
		if digits || hex {
			segs[i] = "*"
		}
	}
	return strings.Join(segs, "/")
}

// costMeter adds up what countingBackends counted during the measured
// calls of one benchmark, and reports it per operation.
type costMeter struct {
	total    storageCost
	families map[string]*familyCost // with -test.v only
}

// wrap returns a countingBackend around be, off.
func (m *costMeter) wrap(be storage.Backend) *countingBackend {
	cb := &countingBackend{Backend: be}
	if testing.Verbose() {
		cb.families = map[string]*familyCost{}
	}
	return cb
}

// start turns cb on: from now on it counts the measured call.
func (m *costMeter) start(cb *countingBackend) {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	cb.on = true
}

// stop turns cb off and adds what it counted to the total.
func (m *costMeter) stop(cb *countingBackend) {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	cb.on = false
	m.total.add(cb.cost)
	cb.cost = storageCost{}
	if len(cb.families) > 0 && m.families == nil {
		m.families = map[string]*familyCost{}
	}
	for name, f := range cb.families {
		t := m.families[name]
		if t == nil {
			t = &familyCost{}
			m.families[name] = t
		}
		t.puts += f.puts
		t.dels += f.dels
		t.bytes += f.bytes
	}
	clear(cb.families)
}

// report reports the total per operation, and with -test.v logs what the
// applied units wrote, by name family, largest first (names and sizes
// only, never values).
func (m *costMeter) report(b *testing.B) {
	n := float64(b.N)
	b.ReportMetric(float64(m.total.reqs)/n, "req/op")
	b.ReportMetric(float64(m.total.units)/n, "units/op")
	b.ReportMetric(float64(m.total.recs)/n, "recs/op")
	b.ReportMetric(float64(m.total.wBytes)/n, "wB/op")
	b.ReportMetric(float64(m.total.rBytes)/n, "rB/op")
	if len(m.families) == 0 {
		return
	}
	names := make([]string, 0, len(m.families))
	for name := range m.families {
		names = append(names, name)
	}
	slices.SortFunc(names, func(x, y string) int {
		if c := m.families[y].bytes - m.families[x].bytes; c != 0 {
			return int(min(max(c, -1), 1))
		}
		return strings.Compare(x, y)
	})
	var sb strings.Builder
	fmt.Fprintf(&sb, "records written per op, by name family (N=%d):", b.N)
	for _, name := range names {
		f := m.families[name]
		fmt.Fprintf(&sb, "\n\t%-44s puts %7.1f  dels %7.1f  bytes %10.0f", name, float64(f.puts)/n, float64(f.dels)/n, float64(f.bytes)/n)
	}
	b.Log(sb.String())
}

// costHandle copies a member's group into a fresh memory backend, wraps
// that in a countingBackend (off) and loads the group through it, so that
// the handle's reads and writes go through the counter and the setup's
// state is left untouched.
func costHandle(tb testing.TB, m *member, cm *costMeter) (*engine.Group, *countingBackend) {
	ctx := context.Background()
	dst := memory.New()
	if err := m.g.CopyTo(ctx, dst); err != nil {
		tb.Fatal(err)
	}
	cb := cm.wrap(dst)
	g, err := engine.LoadGroup(ctx, cb, m.g.GroupID(), m.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return g, cb
}

// BenchmarkStorageCost measures what one engine operation asks of its
// storage backend, in groups of 10 to 50,000 members built as for the
// other benchmarks (buildBenchSetup; the groups of 10,000 and 50,000
// members are skipped with -short; 50,000 takes about 45 s to build on two
// cores, and the whole run below about a minute and a half, so the
// -timeout is only a margin). Each sub-benchmark is Op=<op>/N=<members>
// and reports per operation, besides time and allocations:
//
//	req/op    requests to the backend: calls of Apply, Load, Get and List
//	units/op  units applied (successful Apply calls)
//	recs/op   records written: puts plus deletes of the units applied
//	wB/op     bytes written: name plus value of every put
//	rB/op     bytes read: values returned by Load, Get and List
//
// The backend is the in-memory one behind a counting wrapper; only the
// measured call is counted (and timed). The ops:
//
//	commit          alice.SelfUpdate: the pending commit stored
//	                (ClearPendingCommit outside the measurement)
//	merge           alice.MergePendingCommit of a SelfUpdate, on a fresh
//	                copy of her group each time: the new epoch stored.
//	                commit + merge is what a self-update costs the committer
//	process-commit  bob.Process of alice's commit with a path, then
//	                MergeStagedCommit, on a fresh copy of his group each
//	                time: what a receiver stores for a commit
//	protect         alice.Protect of 1 KiB: the consumed generation stored
//	unprotect       bob.Process of such a message (protected outside the
//	                measurement)
//	join            JoinGroup from a Welcome to the group of N (tree out of
//	                band, last-resort key package); the joined group is
//	                deleted outside the measurement
//	load            LoadGroup of alice's group: one Load and the
//	                signature key's Get
//
// Both protect and unprotect measure the steady state: the first message
// of the epoch, which also stores the secret tree's nodes derived down to
// alice's leaf (O(log N) records), goes before the measurement.
//
// The counts are deterministic up to the lengths of numbers in record
// names (generations, epochs), so a few iterations suffice, while the
// times are noisy. Compare two versions of the code with benchstat:
//
//	go test -run '^$' -bench BenchmarkStorageCost -benchtime 5x -count 3 -timeout 60m ./engine > old.txt
//	(change the code)
//	go test -run '^$' -bench BenchmarkStorageCost -benchtime 5x -count 3 -timeout 60m ./engine > new.txt
//	benchstat old.txt new.txt
//
// benchstat shows one table per unit (sec/op, wB/op, recs/op, ...). With
// -v each sub-benchmark also logs the records it wrote per operation by
// name family ("epoch/*/tree/*"), largest first: names and sizes, never
// values. That bookkeeping is timed and allocates, so compare times and
// allocations of runs without -v only.
func BenchmarkStorageCost(b *testing.B) {
	ops := []struct {
		name string
		run  func(b *testing.B, s *benchSetup, cm *costMeter)
	}{
		{"commit", storageCostCommit},
		{"merge", storageCostMerge},
		{"process-commit", storageCostProcessCommit},
		{"protect", storageCostProtect},
		{"unprotect", storageCostUnprotect},
		{"join", storageCostJoin},
		{"load", storageCostLoad},
	}
	for _, op := range ops {
		b.Run("Op="+op.name, func(b *testing.B) {
			for _, n := range storageCostSizes {
				if testing.Short() && n > 1000 {
					continue
				}
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
					s := getBenchSetup(b, n)
					var cm costMeter
					b.ReportAllocs()
					op.run(b, s, &cm)
					cm.report(b)
				})
			}
		})
	}
}

func storageCostCommit(b *testing.B, s *benchSetup, cm *costMeter) {
	ctx := context.Background()
	g, cb := costHandle(b, s.alice, cm)
	for b.Loop() {
		cm.start(cb)
		_, err := g.SelfUpdate(ctx, nil)
		cm.stop(cb)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := g.ClearPendingCommit(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func storageCostMerge(b *testing.B, s *benchSetup, cm *costMeter) {
	ctx := context.Background()
	epoch := s.alice.g.Epoch()
	for b.Loop() {
		b.StopTimer()
		g, cb := costHandle(b, s.alice, cm)
		if _, err := g.SelfUpdate(ctx, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		cm.start(cb)
		err := g.MergePendingCommit(ctx)
		cm.stop(cb)
		if err != nil {
			b.Fatal(err)
		}
		if g.Epoch() != epoch+1 {
			b.Fatalf("merged into epoch %d, want %d", g.Epoch(), epoch+1)
		}
	}
}

func storageCostProcessCommit(b *testing.B, s *benchSetup, cm *costMeter) {
	ctx := context.Background()
	res, err := benchPure(b, s.alice).Commit(&group.CommitOptions{ForcePath: true})
	if err != nil {
		b.Fatal(err)
	}
	epoch := s.bob.g.Epoch()
	for b.Loop() {
		b.StopTimer()
		g, cb := costHandle(b, s.bob, cm)
		b.StartTimer()
		cm.start(cb)
		rm, err := g.Process(ctx, res.Commit)
		if err == nil {
			err = g.MergeStagedCommit(ctx, rm.Commit)
		}
		cm.stop(cb)
		if err != nil {
			b.Fatal(err)
		}
		if g.Epoch() != epoch+1 {
			b.Fatalf("bob merged into epoch %d, want %d", g.Epoch(), epoch+1)
		}
	}
}

func storageCostProtect(b *testing.B, s *benchSetup, cm *costMeter) {
	ctx := context.Background()
	data := make([]byte, 1024)
	g, cb := costHandle(b, s.alice, cm)
	// The first message of an epoch also derives the secret tree down to
	// the sender's leaf: a one-off, not measured.
	if _, err := g.Protect(ctx, data, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cm.start(cb)
		_, err := g.Protect(ctx, data, nil)
		cm.stop(cb)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func storageCostUnprotect(b *testing.B, s *benchSetup, cm *costMeter) {
	ctx := context.Background()
	data := make([]byte, 1024)
	sender := benchPure(b, s.alice)
	g, cb := costHandle(b, s.bob, cm)
	// The first message of an epoch also derives the secret tree down to
	// the sender's leaf: a one-off, not measured.
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
		cm.start(cb)
		rm, err := g.Process(ctx, msgs[0])
		cm.stop(cb)
		if err != nil {
			b.Fatal(err)
		}
		if len(rm.ApplicationData) != len(data) {
			b.Fatalf("got %d bytes of application data, want %d", len(rm.ApplicationData), len(data))
		}
		msgs = msgs[1:]
	}
}

func storageCostJoin(b *testing.B, s *benchSetup, cm *costMeter) {
	ctx := context.Background()
	j := s.joiner
	cb := cm.wrap(j.store)
	opts := &engine.JoinOptions{RatchetTree: s.tree}
	for b.Loop() {
		cm.start(cb)
		g, err := engine.JoinGroup(ctx, cb, s.welcome, j.cfg, opts)
		cm.stop(cb)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := g.Delete(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	if kps, err := engine.KeyPackages(ctx, j.store); err != nil || len(kps) != 1 {
		b.Fatalf("joiner has %d key packages (%v), want its last-resort one", len(kps), err)
	}
}

func storageCostLoad(b *testing.B, s *benchSetup, cm *costMeter) {
	ctx := context.Background()
	m := s.alice
	cb := cm.wrap(m.store)
	id := m.g.GroupID()
	for b.Loop() {
		cm.start(cb)
		_, err := engine.LoadGroup(ctx, cb, id, m.cfg)
		cm.stop(cb)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// protectBatch protects 256 messages of data from sender, outside the
// measurement, and drops the sender's changes.
func protectBatch(b *testing.B, sender *group.Group, data []byte) []*wire.MLSMessage {
	b.StopTimer()
	defer b.StartTimer()
	msgs := make([]*wire.MLSMessage, 0, 256)
	for range cap(msgs) {
		m, err := sender.Protect(data, nil)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	ch := sender.TakeChanges()
	ch.Clear()
	return msgs
}
