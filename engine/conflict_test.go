package engine_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// flaky is a backend whose Apply and Load fail while told to.
type flaky struct {
	storage.Backend
	failApply, failLoad atomic.Bool
}

var errInjected = errors.New("injected failure")

func (f *flaky) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	if f.failApply.Load() {
		return 0, errInjected
	}
	return f.Backend.Apply(ctx, u)
}

func (f *flaky) Load(ctx context.Context, id []byte) (*storage.GroupRecords, error) {
	if f.failLoad.Load() {
		return nil, errInjected
	}
	return f.Backend.Load(ctx, id)
}

// pair makes a two-member group and returns the members; opts adjust
// Bob's configuration before he joins.
func pair(t *testing.T, seed uint64, opts ...func(*engine.Config)) (*member, *member) {
	t.Helper()
	alice, bob := newMember(t, "alice", seed), newMember(t, "bob", seed+1)
	for _, o := range opts {
		o(bob.cfg)
	}
	alice.create(t, []byte("pair"))
	res, err := alice.g.AddMembers(context.Background(), []*wire.KeyPackage{bob.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(context.Background()); err != nil {
		t.Fatal(err)
	}
	bob.join(t, res.Welcome)
	return alice, bob
}

func TestStaleHandleConflict(t *testing.T) {
	ctx := context.Background()
	alice, bob := pair(t, 31)
	h1 := alice.g
	h2, err := engine.LoadGroup(ctx, alice.store, []byte("pair"), alice.cfg)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := h1.Protect(ctx, []byte("one"), nil)
	if err != nil {
		t.Fatal(err)
	}
	// h2 is stale: its write must fail, or it would reuse m1's generation.
	before := rawDigest(t, alice.store)
	if _, err := h2.Protect(ctx, []byte("two"), nil); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("stale handle: %v", err)
	}
	if rawDigest(t, alice.store) != before {
		t.Fatal("a stale handle changed the backend")
	}
	// The conflict reloaded h2; now it works on the newest state.
	m2, err := h2.Protect(ctx, []byte("two"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*wire.MLSMessage{m1, m2} {
		if _, err := bob.g.Process(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// A commit through h1 is refused now, since h2 moved on.
	if _, err := h1.SelfUpdate(ctx, nil); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("stale commit: %v", err)
	}
	if h1.HasPendingCommit() {
		t.Fatal("the refused commit is pending in the reloaded handle")
	}
	// A deleted group: every handle's write conflicts.
	if err := engine.DeleteGroup(ctx, alice.store, []byte("pair")); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.Protect(ctx, []byte("x"), nil); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("write to a deleted group: %v", err)
	}
	if _, err := h1.Protect(ctx, []byte("x"), nil); !errors.Is(err, engine.ErrHandleBroken) {
		t.Fatalf("after the group was deleted: %v", err)
	}
}

func TestStorageFailureLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	alice, bob := pair(t, 41)
	f := &flaky{Backend: bob.store}
	h, err := engine.LoadGroup(ctx, f, []byte("pair"), bob.cfg)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := alice.g.Protect(ctx, []byte("kept"), nil)

	// A failed write: the message is not consumed and can be processed
	// again once storage works.
	f.failApply.Store(true)
	before := rawDigest(t, bob.store)
	if _, err := h.Process(ctx, msg); !errors.Is(err, engine.ErrStorage) || !errors.Is(err, errInjected) {
		t.Fatalf("failed write: %v", err)
	}
	if rawDigest(t, bob.store) != before {
		t.Fatal("a failed write changed the backend")
	}
	f.failApply.Store(false)
	if rm, err := h.Process(ctx, msg); err != nil || string(rm.ApplicationData) != "kept" {
		t.Fatalf("after recovery: %v", err)
	}

	// A failed write whose reload fails too breaks the handle until Reload.
	msg2, _ := alice.g.Protect(ctx, []byte("later"), nil)
	f.failApply.Store(true)
	f.failLoad.Store(true)
	if _, err := h.Process(ctx, msg2); !errors.Is(err, engine.ErrStorage) {
		t.Fatalf("failed write: %v", err)
	}
	if _, err := h.Process(ctx, msg2); !errors.Is(err, engine.ErrHandleBroken) {
		t.Fatalf("broken handle: %v", err)
	}
	if err := h.Reload(ctx); !errors.Is(err, engine.ErrHandleBroken) {
		t.Fatalf("reload while storage is down: %v", err)
	}
	f.failApply.Store(false)
	f.failLoad.Store(false)
	if err := h.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if rm, err := h.Process(ctx, msg2); err != nil || string(rm.ApplicationData) != "later" {
		t.Fatalf("after reload: %v", err)
	}

	// A cancelled context writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Protect(cctx, []byte("x"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestConcurrentUse runs operations on one handle from many goroutines
// (go test -race checks the locking) and checks that no generation was
// used twice. The messages reach Bob in the order the goroutines queued
// them, not in generation order, so his out-of-order tolerance covers all.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	alice, bob := pair(t, 51, func(c *engine.Config) { c.OutOfOrderTolerance = 1000 })
	const n = 8
	msgs := make(chan *wire.MLSMessage, n*10)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for range 10 {
				m, err := alice.g.Protect(ctx, []byte("c"), nil)
				if err != nil {
					t.Error(err)
					return
				}
				msgs <- m
				_ = alice.g.Epoch()
				_ = alice.g.Members()
			}
		})
	}
	wg.Wait()
	close(msgs)
	count := 0
	for m := range msgs {
		if _, err := bob.g.Process(ctx, m); err != nil {
			t.Fatalf("message %d: %v", count, err)
		}
		count++
	}
	if count != n*10 {
		t.Fatalf("%d messages", count)
	}
}

func TestStoreAndCopy(t *testing.T) {
	ctx := context.Background()
	alice, _ := pair(t, 61)
	// Nothing differs: Store writes nothing.
	v := alice.g.Version()
	if err := alice.g.Store(ctx); err != nil || alice.g.Version() != v {
		t.Fatalf("no-op store: %v, version %d -> %d", err, v, alice.g.Version())
	}
	// A record lost behind the engine's back bumps the version: Store is
	// fenced like every write, and a load fails on the missing record.
	recs, _ := alice.store.Load(ctx, []byte("pair"))
	recs.ClearKeyMaterial()
	if _, err := alice.store.Apply(ctx, &storage.Unit{Scope: storage.GroupScope([]byte("pair")), Version: recs.Version,
		Deletes: []storage.Key{{Scope: storage.GroupScope([]byte("pair")), Class: storage.Public, Name: "confirmation-tag"}}}); err != nil {
		t.Fatal(err)
	}
	if err := alice.g.Store(ctx); !errors.Is(err, engine.ErrConflict) {
		t.Fatalf("store over a newer version: %v", err)
	}
	if _, err := engine.LoadGroup(ctx, alice.store, []byte("pair"), alice.cfg); err == nil || errors.Is(err, engine.ErrGroupNotFound) {
		t.Fatalf("loaded a group with a missing record: %v", err)
	}
	// CopyTo moves the state to another backend, where it loads and works.
	alice, bob := pair(t, 63)
	dst := memory.New()
	if err := bob.g.CopyTo(ctx, dst); err != nil {
		t.Fatal(err)
	}
	moved, err := engine.LoadGroup(ctx, dst, []byte("pair"), bob.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !moved.EpochAuthenticator().Equal(bob.g.EpochAuthenticator()) {
		t.Fatal("moved state differs")
	}
	if err := bob.g.CopyTo(ctx, dst); !errors.Is(err, engine.ErrGroupExists) {
		t.Fatalf("second copy: %v", err)
	}
	m, err := alice.g.Protect(ctx, []byte("to the moved copy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rm, err := moved.Process(ctx, m); err != nil || string(rm.ApplicationData) != "to the moved copy" {
		t.Fatalf("moved copy: %v", err)
	}
}

// TestRacingHandles: two handles of one group, in two goroutines, protect
// messages at once. Every write is fenced by the version, so one of two
// racing writes fails with ErrConflict and its handle reloads; a message
// is returned only once its generation is stored as used. So no generation
// (and no key and nonce) is ever used twice: Bob decrypts every message.
func TestRacingHandles(t *testing.T) {
	ctx := context.Background()
	alice, bob := pair(t, 111, func(c *engine.Config) { c.OutOfOrderTolerance = 1000 })
	cfg2 := *alice.cfg
	cfg2.Rand = newRand(112) // a seeded reader is not safe for concurrent use
	h2, err := engine.LoadGroup(ctx, alice.store, []byte("pair"), &cfg2)
	if err != nil {
		t.Fatal(err)
	}
	const each = 40
	msgs := make(chan *wire.MLSMessage, 2*each)
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	for _, h := range []*engine.Group{alice.g, h2} {
		wg.Go(func() {
			for sent := 0; sent < each; {
				m, err := h.Protect(ctx, []byte("race"), nil)
				if errors.Is(err, engine.ErrConflict) {
					conflicts.Add(1)
					continue // the handle reloaded; try again on the new state
				}
				if err != nil {
					t.Error(err)
					return
				}
				msgs <- m
				sent++
			}
		})
	}
	wg.Wait()
	close(msgs)
	n := 0
	for m := range msgs {
		if _, err := bob.g.Process(ctx, m); err != nil {
			t.Fatalf("message %d: %v", n, err)
		}
		n++
	}
	if n != 2*each {
		t.Fatalf("%d messages", n)
	}
	t.Logf("%d conflicts resolved by reloading", conflicts.Load())
}
