package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/storagetest"
)

// TestCursor: the cursor is stored in the unit of the operation it goes
// with, survives reloads, stays pending across an operation that failed or
// stored nothing, and goes with a retried unit after an unknown outcome.
func TestCursor(t *testing.T) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 81), newMember(t, "bob", 82)
	alice.create(t, []byte("cursor"))
	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bob.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.join(t, res.Welcome)
	if c := bob.g.Cursor(); c != nil {
		t.Fatalf("a new group has cursor %q", c)
	}
	msg, _ := alice.g.Protect(ctx, []byte("one"), nil)
	v := bob.g.Version()
	if err := bob.g.SetCursor([]byte("seq=1")); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if bob.g.Version() != v+1 && bob.g.Version() <= v {
		t.Fatal("no unit")
	}
	bob.reload(t)
	if c := bob.g.Cursor(); string(c) != "seq=1" {
		t.Fatalf("after reload: cursor %q", c)
	}
	// A rejected message stores nothing; the cursor stays pending and is
	// stored alone.
	bob.g.SetCursor([]byte("seq=2"))
	if _, err := bob.g.Process(ctx, msg); !errors.Is(err, group.ErrReplay) {
		t.Fatalf("replay: %v", err)
	}
	bob.reload(t)
	if c := bob.g.Cursor(); string(c) != "seq=1" {
		t.Fatalf("a rejected message stored cursor %q", c)
	}
	bob.g.SetCursor([]byte("seq=2"))
	if _, err := bob.g.Process(ctx, msg); err == nil {
		t.Fatal("replay accepted")
	}
	if err := bob.g.StoreCursor(ctx); err != nil {
		t.Fatal(err)
	}
	bob.reload(t)
	if c := bob.g.Cursor(); string(c) != "seq=2" {
		t.Fatalf("StoreCursor: cursor %q", c)
	}
	// A commit: processed (nothing stored yet), then merged with the cursor.
	res, err = alice.g.SelfUpdate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	alice.g.MergePendingCommit(ctx)
	bob.g.SetCursor([]byte("seq=3"))
	rm, err := bob.g.Process(ctx, res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
		t.Fatal(err)
	}
	bob.reload(t)
	if c := bob.g.Cursor(); string(c) != "seq=3" || bob.g.Epoch() != alice.g.Epoch() {
		t.Fatalf("after the merge: cursor %q, epoch %d", c, bob.g.Epoch())
	}
	// Store (rewriting what differs) keeps the cursor.
	if err := bob.g.Store(ctx); err != nil {
		t.Fatal(err)
	}
	bob.reload(t)
	if c := bob.g.Cursor(); string(c) != "seq=3" {
		t.Fatalf("after Store: cursor %q", c)
	}
	// Over a backend that loses replies, the cursor lands with its unit.
	lossy := storagetest.Lossy(bob.store, storagetest.Script(storagetest.LoseReply))
	g, err := engine.LoadGroup(ctx, lossy, []byte("cursor"), bob.cfg)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ = alice.g.Protect(ctx, []byte("two"), nil)
	g.SetCursor([]byte("seq=4"))
	if _, err := g.Process(ctx, msg); err != nil {
		t.Fatalf("with a lost reply: %v", err)
	}
	if c := g.Cursor(); string(c) != "seq=4" {
		t.Fatalf("after a lost reply: cursor %q", c)
	}
	if err := g.SetCursor(make([]byte, engine.MaxCursorLen+1)); err == nil {
		t.Fatal("an oversized cursor was accepted")
	}
}

// TestSignatureKeyImport: a key made elsewhere is stored, loaded back and
// used to create a group that loads again.
func TestSignatureKeyImport(t *testing.T) {
	ctx := context.Background()
	m := newMember(t, "importer", 91)
	if _, err := engine.LoadSignatureKey(ctx, m.store, m.signer.PublicKey()); !errors.Is(err, engine.ErrSignerNotFound) {
		t.Fatalf("before storing: %v", err)
	}
	if err := engine.StoreSignatureKey(ctx, m.store, engine.DefaultSuite, m.signer); err != nil {
		t.Fatal(err)
	}
	if err := engine.StoreSignatureKey(ctx, m.store, engine.DefaultSuite, m.signer); err != nil {
		t.Fatalf("storing it again: %v", err)
	}
	k, err := engine.LoadSignatureKey(ctx, m.store, m.signer.PublicKey())
	if err != nil || string(k.PublicKey()) != string(m.signer.PublicKey()) {
		t.Fatalf("loaded back: %v", err)
	}
	m.signer = k
	m.create(t, []byte("imported"))
	m.reload(t)
}

// TestProcessThen: the result is delivered before the message's key is
// deleted from storage; a delivery that fails leaves the group as it was,
// so the message is processed again.
func TestProcessThen(t *testing.T) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 93), newMember(t, "bob", 94)
	alice.create(t, []byte("then"))
	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bob.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	alice.g.MergePendingCommit(ctx)
	bob.join(t, res.Welcome)
	msg, _ := alice.g.Protect(ctx, []byte("deliver me"), nil)
	v := bob.g.Version()
	failed := errors.New("the consumer is down")
	if _, err := bob.g.ProcessThen(ctx, msg.Bytes(), func(rm *engine.ReceivedMessage) error {
		if string(rm.ApplicationData) != "deliver me" {
			t.Errorf("delivered %q", rm.ApplicationData)
		}
		return failed
	}); !errors.Is(err, failed) {
		t.Fatalf("a failed delivery: %v", err)
	}
	if bob.g.Version() != v {
		t.Fatal("a failed delivery stored the message's effect")
	}
	bob.reload(t)
	var got []byte
	if _, err := bob.g.ProcessThen(ctx, msg.Bytes(), func(rm *engine.ReceivedMessage) error {
		got = rm.ApplicationData
		return nil
	}); err != nil || string(got) != "deliver me" {
		t.Fatalf("processing again: %q, %v", got, err)
	}
	if _, err := bob.g.Process(ctx, msg); !errors.Is(err, group.ErrReplay) {
		t.Fatalf("after a delivery: %v", err)
	}
}

// ProtectThen stores the cursor made from the message in the unit of the
// generation it consumed; a cursor that fails stores nothing.
func TestProtectThen(t *testing.T) {
	ctx := context.Background()
	alice := newMember(t, "alice", 1)
	counter := &applyCounter{testStore: alice.store}
	alice.store = counter
	alice.create(t, []byte("protect-then"))
	before := counter.units
	var seen []byte
	m, err := alice.g.ProtectThen(ctx, []byte("hi"), nil, func(m *wire.MLSMessage) ([]byte, error) {
		seen = m.Bytes()
		return []byte("cursor-1"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if counter.units-before != 1 || string(seen) != string(m.Bytes()) {
		t.Fatalf("%d units; the cursor saw the message: %v", counter.units-before, string(seen) == string(m.Bytes()))
	}
	alice.reload(t)
	if string(alice.g.Cursor()) != "cursor-1" {
		t.Fatalf("stored cursor %q", alice.g.Cursor())
	}
	before = counter.units
	if _, err := alice.g.ProtectThen(ctx, []byte("no"), nil, func(*wire.MLSMessage) ([]byte, error) { return nil, errors.New("refused") }); err == nil {
		t.Fatal("a failing cursor protected a message")
	}
	if counter.units != before || string(alice.g.Cursor()) != "cursor-1" {
		t.Fatalf("a failing cursor stored %d units, cursor %q", counter.units-before, alice.g.Cursor())
	}
}
