package engine_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// The benchmarks measure the engine (in-memory backend) against the pure
// mls/group API on the same states, suite 0x0001, in groups of 2 to
// 10,000 members, so that the cost of persistence shows directly:
//
//	go test -run XXX -bench . -benchtime 20x ./engine > bench.txt
//	benchstat -col /impl bench.txt
//
// Each benchmark is named Op/N=<members>/impl=<engine|group>:
//
//	CommitWithPath:  SelfUpdate (group: Commit with ForcePath) by alice,
//	                 then ClearPendingCommit, both timed
//	ProcessCommit:   Process of alice's commit with path by bob, then
//	                 Discard of the staged commit (not merged, so the same
//	                 commit processes again)
//	JoinWelcome:     JoinGroup (group: Join) from a Welcome adding one member
//	                 to the group of N, tree out of band, with a last-resort
//	                 key package (the engine deletes the joined group
//	                 outside the timer)
//	Protect1KiB:     Protect of 1 KiB of application data by alice
//	Unprotect1KiB:   Process of such a message by bob (messages protected
//	                 outside the timer)
//
// The group-side state is restored (group.Restore) from the engine's
// stored records, so both sides start from the same state. Changes the
// pure group logs are drained outside the timer; on the engine side taking
// them and applying them to the backend is the overhead measured.
//
// The group of N is built once per process with the public APIs (see
// buildBenchSetup): alice (leaf 1, or 0 with two members) and bob (the
// last leaf, in the other half of the tree) are engine members, a few pure
// group members commit so that no copath node of alice is blank, and the
// other members are key packages without state. So, as in a group where
// every member has committed once, alice's commit encrypts O(log N) path
// secrets (one per copath node), and bob decrypts the root's path secret,
// like the benchmarks of package group.

var benchSizes = []int{2, 10, 100, 1000, 10000}

// benchSetup is the cached state of one group size.
type benchSetup struct {
	n       int
	gid     []byte
	alice   *member                 // engine member at leaf 1 (0 if n == 2)
	bob     *member                 // engine member at leaf n-1
	joiner  *member                 // engine client with one last-resort key package stored
	joinKP  *group.KeyPackageBundle // the same key package, for group.Join
	welcome *wire.MLSMessage        // adds joiner to the group of n
	tree    []byte                  // the ratchet tree that goes with welcome
}

var (
	benchSetupMu sync.Mutex
	benchSetups  = map[int]*benchSetup{}
)

// getBenchSetup builds the group of n members once per process (a build
// that fails fails the benchmark and is tried again by the next).
func getBenchSetup(tb testing.TB, n int) *benchSetup {
	benchSetupMu.Lock()
	defer benchSetupMu.Unlock()
	if s := benchSetups[n]; s != nil {
		return s
	}
	start := time.Now()
	s := buildBenchSetup(tb, n)
	tb.Logf("setup of %d members: %v", n, time.Since(start).Round(time.Millisecond))
	benchSetups[n] = s
	return s
}

func benchGroupConfig() *group.Config {
	return &group.Config{Now: func() time.Time { return testNow }}
}

// benchKeyPackages makes the key packages of leaves 2..n-2 in parallel:
// bundles with their private keys for the helpers' leaves, public key
// packages for the others.
func benchKeyPackages(tb testing.TB, n int, helper map[int]bool) (kps []*wire.KeyPackage, bundles map[int]*group.KeyPackageBundle) {
	suite, err := ciphersuite.Lookup(engine.DefaultSuite)
	if err != nil {
		tb.Fatal(err)
	}
	kps = make([]*wire.KeyPackage, n)
	all := make([]*group.KeyPackageBundle, n)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for l := 2 + w; l < n-1; l += workers {
				sk, err := suite.GenerateSigningKey(nil)
				if err != nil {
					errs[w] = err
					return
				}
				id := &group.Identity{
					Credential: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: fmt.Appendf(nil, "member %d", l)},
					SigningKey: sk,
				}
				b, err := group.NewKeyPackage(engine.DefaultSuite, id, benchGroupConfig(), nil)
				if err != nil {
					errs[w] = err
					return
				}
				kps[l], all[l] = b.KeyPackage, b
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	bundles = map[int]*group.KeyPackageBundle{}
	for l := range helper {
		bundles[l] = all[l]
	}
	return kps, bundles
}

// benchParallel runs f(i) for i in [0, n) on all CPUs and fails tb with the
// first error.
func benchParallel(tb testing.TB, n int, f func(i int) error) {
	errs := make([]error, n)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
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
			tb.Fatal(err)
		}
	}
}

// buildBenchSetup builds a group of n members. With two members, alice
// creates it and adds bob. Otherwise:
//
//  1. a pure group member (root) creates it at leaf 0 and adds the key
//     packages of leaves 1 to n-1 in one commit: alice at leaf 1, bob at
//     leaf n-1, pure group members (helpers) at leaves 2, 4, 8, ... below
//     n-1, and key packages without state elsewhere; alice and bob join
//     from the Welcome with JoinGroup, the helpers with group.Join;
//  2. the helpers commit with a path, from the highest leaf down, and
//     every other member processes and merges it (alice and bob through
//     the engine): the helper at leaf 2^k fills alice's copath node of
//     level k, so that no copath node of alice is blank, and bob, in the
//     other half of the tree, shares only the root's path secret with her;
//  3. a copy of alice commits an Add of the joiner's last-resort key
//     package, for the Welcome of the join benchmark.
//
// The engine members join the group once it is built, because the engine
// cannot build it: a pending commit adding more than ~900 key packages is
// a record larger than storage.MaxValueLen, and the merge of the commit
// that grows a group past 8192 members rewrites the whole tree in a new
// record layout, a unit of more than storage.MaxUnitRecords records.
func buildBenchSetup(tb testing.TB, n int) *benchSetup {
	ctx := context.Background()
	s := &benchSetup{n: n, gid: fmt.Appendf(nil, "bench-%d", n)}
	s.alice = newMember(tb, "alice", uint64(n)*10+1)
	s.bob = newMember(tb, "bob", uint64(n)*10+2)
	s.joiner = newMember(tb, "joiner", uint64(n)*10+3)
	for _, m := range []*member{s.alice, s.bob, s.joiner} {
		m.cfg.RatchetTreeExtension = false // trees go out of band
	}
	join := func(m *member, w *wire.MLSMessage, tree []byte) {
		g, err := engine.JoinGroup(ctx, m.store, w, m.cfg, &engine.JoinOptions{RatchetTree: tree})
		if err != nil {
			tb.Fatalf("%s joins: %v", m.name, err)
		}
		m.g = g
	}

	if n == 2 {
		s.alice.create(tb, s.gid)
		res, err := s.alice.g.AddMembers(ctx, []*wire.KeyPackage{s.bob.keyPackage(tb, false)})
		if err != nil {
			tb.Fatal(err)
		}
		if err := s.alice.g.MergePendingCommit(ctx); err != nil {
			tb.Fatal(err)
		}
		join(s.bob, res.Welcome, s.alice.g.RatchetTreeBytes())
	} else {
		buildBigGroup(tb, s, join)
	}
	mustAgree(tb, s.alice, s.bob)
	if int(s.bob.g.OwnLeafIndex()) != n-1 || len(s.alice.g.Members()) != n {
		tb.Fatalf("bob is at leaf %d of %d", s.bob.g.OwnLeafIndex(), len(s.alice.g.Members()))
	}
	// Every copath node of alice resolves to one node.
	res, err := benchPure(tb, s.alice).Commit(&group.CommitOptions{ForcePath: true})
	if err != nil {
		tb.Fatal(err)
	}
	for _, pn := range res.Commit.PublicMessage.Content.Commit.Path.Nodes {
		if len(pn.EncryptedPathSecret) != 1 {
			tb.Fatalf("%d members: a copath node of alice resolves to %d nodes", n, len(pn.EncryptedPathSecret))
		}
	}

	// 3. The Welcome of the join benchmark, for a last-resort key package
	// stored in the joiner's backend and restored from it for group.Join.
	s.joiner.keyPackage(tb, true)
	pub, err := s.joiner.store.List(ctx, storage.ClientScope(), storage.Public, "key-package/")
	if err != nil || len(pub) != 1 {
		tb.Fatalf("joiner's key packages: %d, %v", len(pub), err)
	}
	km, err := s.joiner.store.List(ctx, storage.ClientScope(), storage.KeyMaterial, "key-package/")
	if err != nil || len(km) != 1 {
		tb.Fatalf("joiner's key package keys: %d, %v", len(km), err)
	}
	if s.joinKP, err = group.RestoreKeyPackageBundle(pub[0].Value, km[0].Value, s.joiner.signer); err != nil {
		tb.Fatal(err)
	}
	a := benchPure(tb, s.alice)
	res, err = a.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{scnAddProp(s.joinKP.KeyPackage)}})
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.MergePendingCommit(); err != nil {
		tb.Fatal(err)
	}
	s.welcome, s.tree = res.Welcome, a.RatchetTreeBytes()
	return s
}

// buildBigGroup does steps 1 and 2 of buildBenchSetup.
func buildBigGroup(tb testing.TB, s *benchSetup, join func(m *member, w *wire.MLSMessage, tree []byte)) {
	ctx, n := context.Background(), s.n
	suite, err := ciphersuite.Lookup(engine.DefaultSuite)
	if err != nil {
		tb.Fatal(err)
	}
	rootKey, err := suite.GenerateSigningKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	root, err := group.Create(benchGroupConfig(), engine.DefaultSuite, &group.Identity{
		Credential: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("root")},
		SigningKey: rootKey,
	}, s.gid, nil)
	if err != nil {
		tb.Fatal(err)
	}
	var helperLeaves []int
	isHelper := map[int]bool{}
	for l := 2; l < n-1; l *= 2 {
		helperLeaves = append(helperLeaves, l)
		isHelper[l] = true
	}
	kps, bundles := benchKeyPackages(tb, n, isHelper)
	kps[1], kps[n-1] = s.alice.keyPackage(tb, false), s.bob.keyPackage(tb, false)
	adds := make([]*wire.Proposal, 0, n-1)
	for _, kp := range kps[1:] {
		adds = append(adds, scnAddProp(kp))
	}
	res, err := root.Commit(&group.CommitOptions{Proposals: adds})
	if err != nil {
		tb.Fatal(err)
	}
	if err := root.MergePendingCommit(); err != nil {
		tb.Fatal(err)
	}
	tree := root.RatchetTreeBytes()
	join(s.alice, res.Welcome, tree)
	join(s.bob, res.Welcome, tree)
	helpers := make([]*group.Group, len(helperLeaves))
	benchParallel(tb, len(helpers), func(i int) error {
		g, err := group.Join(benchGroupConfig(), res.Welcome.Welcome, bundles[helperLeaves[i]], &group.JoinOptions{RatchetTree: tree})
		if err != nil {
			return fmt.Errorf("helper %d joins: %w", helperLeaves[i], err)
		}
		if int(g.OwnLeafIndex()) != helperLeaves[i] {
			return fmt.Errorf("helper for leaf %d is at leaf %d", helperLeaves[i], g.OwnLeafIndex())
		}
		helpers[i] = g
		return nil
	})

	pures := append([]*group.Group{root}, helpers...)
	for i := len(pures) - 1; i > 0; i-- {
		c := pures[i]
		res, err := c.Commit(&group.CommitOptions{ForcePath: true})
		if err != nil {
			tb.Fatalf("leaf %d commits: %v", c.OwnLeafIndex(), err)
		}
		if err := c.MergePendingCommit(); err != nil {
			tb.Fatal(err)
		}
		benchParallel(tb, len(pures), func(j int) error {
			if j == i {
				return nil
			}
			rm, err := pures[j].Process(res.Commit)
			if err == nil {
				err = pures[j].MergeStagedCommit(rm.Commit)
			}
			if err != nil {
				return fmt.Errorf("leaf %d processes the commit of leaf %d: %w", pures[j].OwnLeafIndex(), c.OwnLeafIndex(), err)
			}
			pures[j].TakeChanges()
			return nil
		})
		for _, m := range []*member{s.alice, s.bob} {
			rm, err := m.g.Process(ctx, res.Commit)
			if err != nil {
				tb.Fatalf("%s processes the commit of leaf %d: %v", m.name, c.OwnLeafIndex(), err)
			}
			if err := m.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// benchPure restores a pure group from a member's stored records, as
// LoadGroup does.
func benchPure(tb testing.TB, m *member) *group.Group {
	recs, err := m.store.Load(context.Background(), m.g.GroupID())
	if err != nil {
		tb.Fatal(err)
	}
	defer recs.ClearKeyMaterial()
	g, err := group.Restore(&m.cfg.Config, m.signer, recs.Records)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// benchEngine copies a member's group into a fresh backend and loads it,
// so that every benchmark starts from the same stored state.
func benchEngine(tb testing.TB, m *member) *engine.Group {
	ctx := context.Background()
	dst := memory.New()
	if err := m.g.CopyTo(ctx, dst); err != nil {
		tb.Fatal(err)
	}
	g, err := engine.LoadGroup(ctx, dst, m.g.GroupID(), m.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// benchDrain drops what a pure group logged, outside the timer, every 256
// iterations, so that its change log does not grow without bound.
func benchDrain(b *testing.B, g *group.Group, i int) {
	if i%256 == 255 {
		b.StopTimer()
		ch := g.TakeChanges()
		ch.Clear()
		b.StartTimer()
	}
}

func forBenchSizes(b *testing.B, f func(b *testing.B, s *benchSetup, engineSide bool)) {
	for _, n := range benchSizes {
		if testing.Short() && n > 1000 {
			continue
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			s := getBenchSetup(b, n)
			for _, impl := range []string{"engine", "group"} {
				b.Run("impl="+impl, func(b *testing.B) {
					b.ReportAllocs()
					f(b, s, impl == "engine")
				})
			}
		})
	}
}

func BenchmarkCommitWithPath(b *testing.B) {
	ctx := context.Background()
	forBenchSizes(b, func(b *testing.B, s *benchSetup, engineSide bool) {
		if engineSide {
			g := benchEngine(b, s.alice)
			b.ResetTimer()
			for b.Loop() {
				if _, err := g.SelfUpdate(ctx, nil); err != nil {
					b.Fatal(err)
				}
				if err := g.ClearPendingCommit(ctx); err != nil {
					b.Fatal(err)
				}
			}
			return
		}
		g := benchPure(b, s.alice)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, err := g.Commit(&group.CommitOptions{ForcePath: true}); err != nil {
				b.Fatal(err)
			}
			if err := g.ClearPendingCommit(); err != nil {
				b.Fatal(err)
			}
			benchDrain(b, g, i)
		}
	})
}

func BenchmarkProcessCommit(b *testing.B) {
	ctx := context.Background()
	forBenchSizes(b, func(b *testing.B, s *benchSetup, engineSide bool) {
		res, err := benchPure(b, s.alice).Commit(&group.CommitOptions{ForcePath: true})
		if err != nil {
			b.Fatal(err)
		}
		if engineSide {
			g := benchEngine(b, s.bob)
			v := g.Version()
			for range 2 { // repeatable, and writes nothing
				rm, err := g.Process(ctx, res.Commit)
				if err != nil {
					b.Fatal(err)
				}
				rm.Commit.Discard()
			}
			if g.Version() != v {
				b.Fatal("processing a commit wrote to storage")
			}
			b.ResetTimer()
			for b.Loop() {
				rm, err := g.Process(ctx, res.Commit)
				if err != nil {
					b.Fatal(err)
				}
				rm.Commit.Discard()
			}
			return
		}
		g := benchPure(b, s.bob)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			rm, err := g.Process(res.Commit)
			if err != nil {
				b.Fatal(err)
			}
			rm.Commit.Discard()
			benchDrain(b, g, i)
		}
	})
}

func BenchmarkJoinWelcome(b *testing.B) {
	ctx := context.Background()
	forBenchSizes(b, func(b *testing.B, s *benchSetup, engineSide bool) {
		if engineSide {
			j := s.joiner
			opts := &engine.JoinOptions{RatchetTree: s.tree}
			b.ResetTimer()
			for b.Loop() {
				g, err := engine.JoinGroup(ctx, j.store, s.welcome, j.cfg, opts)
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
			return
		}
		cfg := benchGroupConfig()
		opts := &group.JoinOptions{RatchetTree: s.tree}
		b.ResetTimer()
		for b.Loop() {
			if _, err := group.Join(cfg, s.welcome.Welcome, s.joinKP, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkProtect1KiB(b *testing.B) {
	ctx := context.Background()
	data := make([]byte, 1024)
	forBenchSizes(b, func(b *testing.B, s *benchSetup, engineSide bool) {
		b.SetBytes(int64(len(data)))
		if engineSide {
			g := benchEngine(b, s.alice)
			b.ResetTimer()
			for b.Loop() {
				if _, err := g.Protect(ctx, data, nil); err != nil {
					b.Fatal(err)
				}
			}
			return
		}
		g := benchPure(b, s.alice)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if _, err := g.Protect(data, nil); err != nil {
				b.Fatal(err)
			}
			benchDrain(b, g, i)
		}
	})
}

func BenchmarkUnprotect1KiB(b *testing.B) {
	ctx := context.Background()
	data := make([]byte, 1024)
	forBenchSizes(b, func(b *testing.B, s *benchSetup, engineSide bool) {
		b.SetBytes(int64(len(data)))
		sender := benchPure(b, s.alice)
		var process func(*wire.MLSMessage) error
		var rcv *group.Group
		if engineSide {
			g := benchEngine(b, s.bob)
			process = func(m *wire.MLSMessage) error { _, err := g.Process(ctx, m); return err }
		} else {
			rcv = benchPure(b, s.bob)
			process = func(m *wire.MLSMessage) error { _, err := rcv.Process(m); return err }
		}
		const batch = 256
		var msgs []*wire.MLSMessage
		b.ResetTimer()
		for b.Loop() {
			if len(msgs) == 0 {
				b.StopTimer()
				for range batch {
					m, err := sender.Protect(data, nil)
					if err != nil {
						b.Fatal(err)
					}
					msgs = append(msgs, m)
				}
				sender.TakeChanges()
				if rcv != nil {
					ch := rcv.TakeChanges()
					ch.Clear()
				}
				b.StartTimer()
			}
			if err := process(msgs[0]); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[1:]
		}
	})
}

// TestBenchSetup checks the benchmarks' groups: alice's commits encrypt
// one path secret per copath node (no blank node), bob follows them and
// processes a commit repeatedly without writing, the joiner joins, and
// application messages go through, on both sides.
func TestBenchSetup(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{2, 3, 10, 33} {
		s := getBenchSetup(t, n)
		a, bob := benchEngine(t, s.alice), benchEngine(t, s.bob)
		res, err := a.SelfUpdate(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		cts := 0
		for _, pn := range res.Commit.PublicMessage.Content.Commit.Path.Nodes {
			cts += len(pn.EncryptedPathSecret)
			if len(pn.EncryptedPathSecret) != 1 {
				t.Errorf("%d members: a copath node of alice has a resolution of %d nodes", n, len(pn.EncryptedPathSecret))
			}
		}
		v := bob.Version()
		for range 2 {
			rm, err := bob.Process(ctx, res.Commit)
			if err != nil {
				t.Fatalf("%d members: %v", n, err)
			}
			rm.Commit.Discard()
		}
		if bob.Version() != v {
			t.Fatalf("%d members: processing a commit wrote", n)
		}
		rm, err := bob.Process(ctx, res.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.MergePendingCommit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := bob.MergeStagedCommit(ctx, rm.Commit); err != nil {
			t.Fatal(err)
		}
		if !a.EpochAuthenticator().Equal(bob.EpochAuthenticator()) || len(a.Members()) != n {
			t.Fatalf("%d members: alice and bob disagree", n)
		}
		msg, err := a.Protect(ctx, make([]byte, 1024), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.Process(ctx, msg); err != nil {
			t.Fatal(err)
		}

		j := s.joiner
		for range 2 {
			g, err := engine.JoinGroup(ctx, j.store, s.welcome, j.cfg, &engine.JoinOptions{RatchetTree: s.tree})
			if err != nil {
				t.Fatalf("%d members: join: %v", n, err)
			}
			if len(g.Members()) != n+1 {
				t.Fatalf("%d members: joiner sees %d", n, len(g.Members()))
			}
			if err := g.Delete(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := group.Join(benchGroupConfig(), s.welcome.Welcome, s.joinKP, &group.JoinOptions{RatchetTree: s.tree}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d members: alice's commit encrypts %d path secrets", n, cts)
	}
}

// BenchmarkLoadGroup loads a member's group from its backend, the cost a
// stateless worker pays per message: decoding the records, checking the
// tree hash and parsing the member's private keys (the signature key and
// the HPKE keys of its path, each a scalar multiplication in Go's crypto
// API).
func BenchmarkLoadGroup(b *testing.B) {
	ctx := context.Background()
	for _, n := range benchSizes {
		if testing.Short() && n > 1000 {
			continue
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			m := getBenchSetup(b, n).alice
			b.ReportAllocs()
			for b.Loop() {
				if _, err := engine.LoadGroup(ctx, m.store, m.g.GroupID(), m.cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkColdDecrypt is what a worker pays to decrypt one application
// message of a group it does not hold in memory: LoadGroup of bob's
// group, then Process of a 1 KiB message from alice (which stores the
// consumed generation). The messages are protected outside the
// measurement, in a copy of alice's group, a batch at a time; bob's store
// keeps the decryptions, as a worker's would.
func BenchmarkColdDecrypt(b *testing.B) {
	ctx := context.Background()
	for _, n := range benchSizes {
		if testing.Short() && n > 1000 {
			continue
		}
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			s := getBenchSetup(b, n)
			store := memory.New()
			if err := s.bob.g.CopyTo(ctx, store); err != nil {
				b.Fatal(err)
			}
			bob, err := engine.LoadGroup(ctx, store, s.bob.g.GroupID(), s.bob.cfg)
			if err != nil {
				b.Fatal(err)
			}
			sender := benchPure(b, s.alice)
			data := make([]byte, 1024)
			first, err := sender.Protect(data, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bob.Process(ctx, first); err != nil {
				b.Fatal(err)
			}
			var msgs []*wire.MLSMessage
			b.ReportAllocs()
			for b.Loop() {
				if len(msgs) == 0 {
					msgs = protectBatch(b, sender, data)
				}
				g, err := engine.LoadGroup(ctx, store, s.bob.g.GroupID(), s.bob.cfg)
				if err != nil {
					b.Fatal(err)
				}
				rm, err := g.Process(ctx, msgs[0])
				if err != nil || len(rm.ApplicationData) != len(data) {
					b.Fatalf("decrypting: %v", err)
				}
				msgs = msgs[1:]
			}
		})
	}
}
