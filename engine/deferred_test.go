package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

// applyCounter counts the units handed to a backend.
type applyCounter struct {
	testStore
	units int
}

func (c *applyCounter) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	c.units++
	return c.testStore.Apply(ctx, u)
}

// ProcessDeferred stores nothing for a run of application messages; Flush
// stores the run in one unit, after which the run's messages are replays
// and their keys gone from storage. Without a flush, a reload forgets the
// run and reads its messages again, as a worker replaying its log does.
func TestProcessDeferred(t *testing.T) {
	ctx := context.Background()
	alice, bob := newMember(t, "alice", 1), newMember(t, "bob", 2)
	counter := &applyCounter{testStore: bob.store}
	bob.store = counter
	alice.create(t, []byte("deferred"))
	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bob.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	bob.join(t, res.Welcome)
	const run = 20
	var msgs [][]byte
	for i := range run {
		m, err := alice.g.Protect(ctx, []byte(fmt.Sprintf("m%d", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m.Bytes())
	}
	read := func(h *engine.Group, from int) {
		t.Helper()
		for i, b := range msgs[from:] {
			var delivered string
			rm, err := h.ProcessDeferred(ctx, b, func(rm *engine.ReceivedMessage) error { delivered = string(rm.ApplicationData); return nil })
			if err != nil {
				t.Fatalf("message %d: %v", from+i, err)
			}
			if want := fmt.Sprintf("m%d", from+i); string(rm.ApplicationData) != want || delivered != want {
				t.Fatalf("read %q, delivered %q, want %q", rm.ApplicationData, delivered, want)
			}
		}
	}
	before := counter.units
	read(bob.g, 0)
	if n := counter.units - before; n != 0 {
		t.Fatalf("%d units for %d deferred messages", n, run)
	}
	// A crash: the stored state reads the whole run again.
	bob.reload(t)
	read(bob.g, 0)
	// Flushed: one unit, and the run is read.
	before = counter.units
	if err := bob.g.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := counter.units - before; n != 1 {
		t.Fatalf("flush wrote %d units", n)
	}
	if err := bob.g.Flush(ctx); err != nil || counter.units-before != 1 {
		t.Fatalf("a flush with nothing to store wrote a unit (%v)", err)
	}
	bob.reload(t)
	for i, b := range msgs {
		if _, err := bob.g.ProcessBytes(ctx, b); !errors.Is(err, group.ErrReplay) {
			t.Fatalf("message %d after the flush: %v, want a replay", i, err)
		}
	}
	// Half a run, then an operation that stores (a commit): the run is
	// stored with it.
	msgs = msgs[:0]
	for i := range 4 {
		m, err := alice.g.Protect(ctx, []byte(fmt.Sprintf("m%d", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m.Bytes())
	}
	read(bob.g, 0)
	up, err := bob.g.SelfUpdate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	land(t, bob, up, alice)
	mustAgree(t, alice, bob)
	bob.reload(t)
	mustAgree(t, alice, bob)
	for i, b := range msgs { // of the past epoch, which bob keeps
		if _, err := bob.g.ProcessBytes(ctx, b); !errors.Is(err, group.ErrReplay) {
			t.Fatalf("message %d of the run before the commit: %v, want a replay", i, err)
		}
	}
}
