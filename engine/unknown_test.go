package engine_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/storagetest"
)

// lossyMember makes m's backend lose what the returned LossyBackend's
// plan says, and gives m two attempts per unit, so that a test can make
// an operation end with its outcome unknown.
func lossyMember(m *member) *storagetest.LossyBackend {
	l := storagetest.Lossy(m.store, nil)
	m.store = l
	m.cfg.ApplyAttempts = 2
	return l
}

// lose is a plan losing every attempt of one operation in the same way.
func lose(f storagetest.Fault) func(*storagetest.LossyBackend) {
	return func(l *storagetest.LossyBackend) { l.SetPlan(storagetest.Script(f, f)) }
}

// TestUnknownOutcomeKeepsResults loses the acknowledgements (or the
// requests) of every attempt to store a decryption, a commit and a join,
// so that each operation fails with ErrUnknownOutcome; the caller retries
// the same call once storage answers again and gets its plaintext, commit
// or group exactly once, and every member's stored state is consistent.
func TestUnknownOutcomeKeepsResults(t *testing.T) {
	for _, f := range []storagetest.Fault{storagetest.LoseReply, storagetest.LoseRequest} {
		t.Run(f.String(), func(t *testing.T) {
			t.Run("decrypt", func(t *testing.T) { testUnknownDecrypt(t, f) })
			t.Run("commit", func(t *testing.T) { testUnknownCommit(t, f) })
			t.Run("join", func(t *testing.T) { testUnknownJoin(t, f) })
		})
	}
}

func testUnknownDecrypt(t *testing.T, f storagetest.Fault) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 61), newMember(t, "bob", 62)
	l := lossyMember(bob)
	alice.create(t, []byte("unknown"))
	add := addOne(t, alice, bob)
	land(t, alice, add)
	bob.join(t, add.Welcome)

	msg, err := alice.g.Protect(ctx, []byte("secret plan"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	lose(f)(l)
	if _, err := bob.g.Process(ctx, msg); !errors.Is(err, engine.ErrUnknownOutcome) {
		t.Fatalf("Process with every attempt lost: %v, want ErrUnknownOutcome", err)
	}
	if !bob.g.Unresolved() {
		t.Fatal("the handle does not know its last operation is unresolved")
	}
	// Storage answers again; the redelivered message gives the plaintext
	// once, and only once.
	rm, err := bob.g.Process(ctx, msg)
	if err != nil || string(rm.ApplicationData) != "secret plan" || string(rm.AuthenticatedData) != "aad" {
		t.Fatalf("retried Process: %v", err)
	}
	if bob.g.Unresolved() {
		t.Fatal("still unresolved after a retry that stored the unit")
	}
	if _, err := bob.g.Process(ctx, msg); !errors.Is(err, group.ErrReplay) {
		t.Fatalf("a third delivery: %v, want ErrReplay", err)
	}
	// The decryption is stored: a fresh load refuses the message too, and
	// the message key is gone from the backend.
	bob.reload(t)
	if _, err := bob.g.Process(ctx, msg); !errors.Is(err, group.ErrReplay) {
		t.Fatalf("after a reload: %v, want ErrReplay", err)
	}
	if n := l.Faults(); n != 2 {
		t.Errorf("%d faults injected, want 2", n)
	}
	// And the group goes on.
	res, err := alice.g.SelfUpdate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	land(t, alice, res, bob)
	mustAgree(t, alice, bob)
}

func testUnknownCommit(t *testing.T, f storagetest.Fault) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 71), newMember(t, "bob", 72)
	l := lossyMember(alice)
	alice.create(t, []byte("unknown"))
	add := addOne(t, alice, bob)
	land(t, alice, add)
	bob.join(t, add.Welcome)

	lose(f)(l)
	if _, err := alice.g.SelfUpdate(ctx, nil); !errors.Is(err, engine.ErrUnknownOutcome) {
		t.Fatalf("SelfUpdate with every attempt lost: %v, want ErrUnknownOutcome", err)
	}
	// Resolve learns the outcome without a call; the retried call then
	// gets the kept commit, not a new one.
	if err := alice.g.Resolve(ctx); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	stored := rawDigest(t, alice.store)
	res, err := alice.g.SelfUpdate(ctx, nil)
	if err != nil {
		t.Fatalf("retried SelfUpdate: %v", err)
	}
	if rawDigest(t, alice.store) != stored {
		t.Fatal("the retried SelfUpdate made and stored another commit instead of returning the kept one")
	}
	// The kept commit is the stored pending commit: it survives a reload
	// and merges.
	alice.reload(t)
	if !alice.g.HasPendingCommit() {
		t.Fatal("the pending commit is not stored")
	}
	land(t, alice, res, bob)
	mustAgree(t, alice, bob)
	if alice.g.Epoch() != res.Epoch {
		t.Fatalf("alice at epoch %d, the kept commit makes %d", alice.g.Epoch(), res.Epoch)
	}
	// A second SelfUpdate is a new commit: the kept one was handed out.
	res2, err := alice.g.SelfUpdate(ctx, nil)
	if err != nil || bytes.Equal(res2.Commit.Bytes(), res.Commit.Bytes()) {
		t.Fatalf("the next SelfUpdate: %v (same commit: %v)", err, err == nil)
	}
}

func testUnknownJoin(t *testing.T, f storagetest.Fault) {
	ctx := context.Background()
	alice, bob, carol := newMember(t, "alice", 81), newMember(t, "bob", 82), newMember(t, "carol", 83)
	l := lossyMember(carol)
	alice.create(t, []byte("unknown"))
	add := addOne(t, alice, bob)
	land(t, alice, add)
	bob.join(t, add.Welcome)
	res := addOne(t, alice, carol)
	land(t, alice, res, bob)

	lose(f)(l)
	if _, err := engine.JoinGroup(ctx, carol.store, res.Welcome, carol.cfg, nil); !errors.Is(err, engine.ErrUnknownOutcome) {
		t.Fatalf("JoinGroup with every attempt lost: %v, want ErrUnknownOutcome", err)
	}
	// The same Welcome again, in a fresh call (as after a restart): the
	// group, joined exactly once.
	g, err := engine.JoinGroup(ctx, carol.store, res.Welcome, carol.cfg, nil)
	if err != nil {
		t.Fatalf("JoinGroup again: %v", err)
	}
	carol.g = g
	mustAgree(t, alice, bob, carol)
	kps, err := engine.KeyPackages(ctx, carol.store)
	if err != nil || len(kps) != 0 {
		t.Fatalf("key packages after joining: %d, %v", len(kps), err)
	}
	// Carol's state is complete and goes on.
	carol.reload(t)
	up, err := carol.g.SelfUpdate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	land(t, carol, up, alice, bob)
	mustAgree(t, alice, bob, carol)
	// Deleting the group deletes the record of the Welcome with it.
	if err := carol.g.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.JoinGroup(ctx, carol.store, res.Welcome, carol.cfg, nil); !errors.Is(err, engine.ErrNoKeyPackage) {
		t.Fatalf("the Welcome of a deleted group: %v, want ErrNoKeyPackage", err)
	}
}

// addOne commits the Add of a fresh key package of m.
func addOne(t *testing.T, by, m *member) *engine.CommitResult {
	t.Helper()
	res, err := by.g.AddMembers(context.Background(), []*wire.KeyPackage{m.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestRetryRecognizedInsideOneCall: a lost acknowledgement that the next
// attempt of the same call recognizes is invisible to the caller.
func TestRetryRecognizedInsideOneCall(t *testing.T) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 91), newMember(t, "bob", 92)
	l := lossyMember(bob)
	bob.cfg.ApplyAttempts = 0
	alice.create(t, []byte("unknown"))
	add := addOne(t, alice, bob)
	land(t, alice, add)
	l.SetPlan(storagetest.Script(storagetest.LoseReply, storagetest.LoseRequest, storagetest.LoseReply))
	bob.join(t, add.Welcome)
	var got []string
	for _, s := range []string{"a", "b", "c"} {
		msg, _ := alice.g.Protect(ctx, []byte(s), nil)
		l.SetPlan(storagetest.Script(storagetest.LoseReply))
		rm, err := bob.g.Process(ctx, msg)
		if err != nil {
			t.Fatalf("Process: %v", err)
		}
		got = append(got, string(rm.ApplicationData))
	}
	if !slices.Equal(got, []string{"a", "b", "c"}) || l.Faults() != 6 {
		t.Fatalf("got %v with %d faults", got, l.Faults())
	}
}

// versionCounter counts the reads a backend serves.
type versionCounter struct {
	testStore
	versions, loads int
}

func (c *versionCounter) Version(ctx context.Context, id []byte) (uint64, error) {
	c.versions++
	return c.testStore.Version(ctx, id)
}

func (c *versionCounter) Load(ctx context.Context, id []byte) (*storage.GroupRecords, error) {
	c.loads++
	return c.testStore.Load(ctx, id)
}

// TestRefresh: two handles of one stored group, as two workers hold them.
// A current handle learns it is current with one Version request and no
// load; a stale one reloads, once; a deleted group breaks it.
func TestRefresh(t *testing.T) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 101), newMember(t, "bob", 102)
	counter := &versionCounter{testStore: alice.store}
	alice.store = counter
	alice.create(t, []byte("refresh"))
	other, err := engine.LoadGroup(ctx, counter, alice.g.GroupID(), alice.cfg)
	if err != nil {
		t.Fatal(err)
	}
	counter.versions, counter.loads = 0, 0
	if reloaded, err := other.Refresh(ctx); err != nil || reloaded || counter.versions != 1 || counter.loads != 0 {
		t.Fatalf("Refresh of a current handle: reloaded %v, %v; %d version reads, %d loads", reloaded, err, counter.versions, counter.loads)
	}
	add := addOne(t, alice, bob)
	land(t, alice, add)
	if reloaded, err := other.Refresh(ctx); err != nil || !reloaded || other.Epoch() != alice.g.Epoch() {
		t.Fatalf("Refresh of a stale handle: reloaded %v, %v, epoch %d (want %d)", reloaded, err, other.Epoch(), alice.g.Epoch())
	}
	if reloaded, err := other.Refresh(ctx); err != nil || reloaded {
		t.Fatalf("second Refresh: reloaded %v, %v", reloaded, err)
	}
	// The refreshed handle writes without a conflict.
	if _, err := other.SelfUpdate(ctx, nil); err != nil {
		t.Fatalf("a commit after Refresh: %v", err)
	}
	if err := engine.DeleteGroup(ctx, counter, alice.g.GroupID()); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Refresh(ctx); !errors.Is(err, engine.ErrGroupNotFound) {
		t.Fatalf("Refresh of a deleted group: %v, want ErrGroupNotFound", err)
	}
}
