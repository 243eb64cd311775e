package jetstore_test

import (
	"context"
	"testing"

	"github.com/mlsengine/mlsengine/storage"
)

// TestLargeCreationAgain: a group created in several batches, deleted and
// created again (a member joining, leaving and joining).
func TestLargeCreationAgain(t *testing.T) {
	ctx := context.Background()
	e := startServer(t)
	s := open(t, e, "alice", noGrace)
	gid := []byte("again")
	for i := range 3 {
		u := bigCreation(gid, storage.UnitID{byte(i + 1)})
		u.Deletes = nil
		v, err := s.Apply(ctx, u)
		if err != nil {
			t.Fatalf("creation %d: %v", i, err)
		}
		g, err := s.Load(ctx, gid)
		if err != nil || len(g.Records) != 3000 {
			t.Fatalf("load %d: %v", i, err)
		}
		if _, err := s.Apply(ctx, &storage.Unit{Scope: storage.GroupScope(gid), Version: v, DeleteGroup: true}); err != nil {
			t.Fatalf("deletion %d: %v", i, err)
		}
		checkClean(t, s)
	}
}
