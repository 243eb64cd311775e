package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// keyPackages makes n key packages of distinct clients (pure protocol;
// their private keys are not needed).
func keyPackages(t *testing.T, n int, seed uint64) []*wire.KeyPackage {
	t.Helper()
	s, _ := ciphersuite.Lookup(engine.DefaultSuite)
	rnd := newRand(seed)
	cfg := &group.Config{Rand: rnd, Now: func() time.Time { return testNow }}
	out := make([]*wire.KeyPackage, n)
	for i := range out {
		sk, err := s.GenerateSigningKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		id := &group.Identity{Credential: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: fmt.Appendf(nil, "m%d", i)}, SigningKey: sk}
		b, err := group.NewKeyPackage(engine.DefaultSuite, id, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b.KeyPackage
	}
	return out
}

// TestLargeGroupsFitUnits grows a group across the 8,192-member boundary
// where the tree's records change layout, with a thousand Adds in one
// commit (a pending commit of several hundred KiB): every operation must
// still fit one storage unit (storage.MaxUnitRecords records of at most
// storage.MaxValueLen bytes), which the memory backend enforces.
func TestLargeGroupsFitUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a group of 8,193 members")
	}
	ctx := context.Background()
	alice := newMember(t, "alice", 71)
	alice.create(t, []byte("large"))
	kps := keyPackages(t, 8192, 72)
	add := func(batch []*wire.KeyPackage, reload bool) {
		t.Helper()
		if _, err := alice.g.AddMembers(ctx, batch); err != nil {
			t.Fatalf("adding %d at %d members: %v", len(batch), len(alice.g.Members()), err)
		}
		if reload {
			alice.reload(t) // the pending commit, in several records, restores
		}
		if err := alice.g.MergePendingCommit(ctx); err != nil {
			t.Fatalf("merging at %d members: %v", len(alice.g.Members()), err)
		}
	}
	add(kps[:1500], true)
	for i := 1500; i < 8191; i += 1400 {
		add(kps[i:min(i+1400, 8191)], false)
	}
	if n := len(alice.g.Members()); n != 8192 {
		t.Fatalf("%d members", n)
	}
	add(kps[8191:], true) // 8,193 members: the tree's record layout changes
	if _, err := alice.g.SelfUpdate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	alice.reload(t)
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	alice.reload(t)
	if n := len(alice.g.Members()); n != 8193 {
		t.Fatalf("%d members after reload", n)
	}
}
