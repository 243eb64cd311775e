package engine_test

import (
	"context"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

func TestInspectTreeShape(t *testing.T) {
	ctx := context.Background()
	alice, bob, carol := newMember(t, "alice", 1), newMember(t, "bob", 2), newMember(t, "carol", 3)
	alice.create(t, []byte("shape"))
	want := func(g *engine.Group, s engine.TreeShape) {
		t.Helper()
		if got := g.TreeShape(); got != s {
			t.Fatalf("epoch %d: shape %+v, want %+v", g.Epoch(), got, s)
		}
	}
	want(alice.g, engine.TreeShape{Leaves: 1, BlankLeaves: 0, Width: 1})

	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{bob.keyPackage(t, false), carol.keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	land(t, alice, res)
	bob.join(t, res.Welcome)
	carol.join(t, res.Welcome)
	// Three members in a tree of four leaves, seen alike by a joiner.
	want(alice.g, engine.TreeShape{Leaves: 4, BlankLeaves: 1, Width: 7})
	want(carol.g, engine.TreeShape{Leaves: 4, BlankLeaves: 1, Width: 7})

	// Removing bob (leaf 1) blanks a leaf in the middle; removing carol,
	// the rightmost, truncates the tree (§12.3).
	res, err = alice.g.RemoveMembers(ctx, []treemath.LeafIndex{1})
	if err != nil {
		t.Fatal(err)
	}
	land(t, alice, res, carol)
	want(alice.g, engine.TreeShape{Leaves: 4, BlankLeaves: 2, Width: 7})
	res, err = alice.g.RemoveMembers(ctx, []treemath.LeafIndex{2})
	if err != nil {
		t.Fatal(err)
	}
	land(t, alice, res)
	want(alice.g, engine.TreeShape{Leaves: 1, BlankLeaves: 0, Width: 1})
	alice.reload(t)
	want(alice.g, engine.TreeShape{Leaves: 1, BlankLeaves: 0, Width: 1})
}

func TestInspectCursorRecordName(t *testing.T) {
	ctx := context.Background()
	alice := newMember(t, "alice", 1)
	alice.create(t, []byte("cursor"))
	if err := alice.g.SetCursor([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := alice.g.StoreCursor(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := alice.store.Load(ctx, []byte("cursor"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := recs.Find(storage.Public, engine.CursorRecordName); !ok {
		t.Fatalf("no public record %q after StoreCursor", engine.CursorRecordName)
	}
}
