package group_test

import (
	"bytes"
	"github.com/mlsengine/mlsengine/storage"
	"strings"
	"testing"

	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// recordStore keeps a group's records the way a storage layer does: the
// whole state once, then every TakeChanges applied on top.
type recordStore map[storage.Key][]byte

func newRecordStore(g *group.Group) recordStore {
	st := recordStore{}
	for _, r := range g.Records() {
		st[r.Key] = r.Value
	}
	return st
}

// apply applies g's changes and returns them.
func (st recordStore) apply(g *group.Group) group.Changes {
	ch := g.TakeChanges()
	for _, r := range ch.Puts {
		st[r.Key] = r.Value
	}
	for k := range st {
		if ch.Deleted(k) {
			delete(st, k)
		}
	}
	return ch
}

// mustMatch checks that the store holds exactly g.Records(): what the
// changes built is what a full write would be.
func (st recordStore) mustMatch(t *testing.T, g *group.Group, when string) {
	t.Helper()
	recs := g.Records()
	if len(recs) != len(st) {
		have := map[storage.Key]bool{}
		for _, r := range recs {
			have[r.Key] = true
			if _, ok := st[r.Key]; !ok {
				t.Errorf("%s: %s missing from the store", when, r.Key.Name)
			}
		}
		for k := range st {
			if !have[k] {
				t.Errorf("%s: %s stored, not in the state", when, k.Name)
			}
		}
		t.Fatalf("%s: %d records stored, the state has %d", when, len(st), len(recs))
	}
	for _, r := range recs {
		if v, ok := st[r.Key]; !ok || !bytes.Equal(v, r.Value) {
			t.Fatalf("%s: stored %s differs from the state's", when, r.Key.Name)
		}
	}
}

// restore rebuilds c's group from the store alone.
func (st recordStore) restore(t *testing.T, c *client, when string) *group.Group {
	t.Helper()
	recs := make([]storage.Record, 0, len(st))
	for k, v := range st {
		recs = append(recs, storage.Record{Key: k, Value: v})
	}
	g, err := group.Restore(c.cfg, c.id.SigningKey, recs)
	if err != nil {
		t.Fatalf("%s: restore: %v", when, err)
	}
	return g
}

// TestTreeTiles grows a tree across tile bands, shrinks it by removals,
// and updates a member whose leaf is too large for a tile (a 1,500-byte
// identity), checking after every commit that the records the changes
// built are exactly the state's, that they restore the same group, and
// that a self-update writes only the tiles of its path.
func TestTreeTiles(t *testing.T) {
	alice := newClient(t, suite1, "alice", 31)
	newGroupOf(t, alice)
	st := newRecordStore(alice.g)
	alice.g.TakeChanges()
	commit := func(when string, opts *group.CommitOptions) group.Changes {
		t.Helper()
		if _, err := alice.g.Commit(opts); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if err := alice.g.MergePendingCommit(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		ch := st.apply(alice.g)
		st.mustMatch(t, alice.g, when)
		if g := st.restore(t, alice, when); fingerprint(g) != fingerprint(alice.g) {
			t.Fatalf("%s: restored state differs", when)
		}
		return ch
	}
	big := newClient(t, suite1, strings.Repeat("b", 1500), 32)
	seed := uint64(100)
	add := func(n int) *group.CommitOptions {
		var props []*wire.Proposal
		for range n {
			seed++
			props = append(props, addProposal(newClient(t, suite1, "m", seed).keyPackage(t, suite1)))
		}
		return &group.CommitOptions{Proposals: props}
	}
	commit("add 2", add(2))
	commit("add the big one", &group.CommitOptions{Proposals: []*wire.Proposal{addProposal(big.keyPackage(t, suite1))}})
	external := func() int {
		n := 0
		for k := range st {
			if strings.HasPrefix(k.Name, "tree/x/") {
				n++
			}
		}
		return n
	}
	if external() != 1 {
		t.Fatalf("%d nodes in records of their own, want the big leaf's", external())
	}
	commit("add 30", add(30)) // 34 members: 64 leaves, three bands of tiles
	commit("path", &group.CommitOptions{ForcePath: true})
	commit("update the big leaf", &group.CommitOptions{Identity: nil, ForcePath: true})
	// Remove everyone above leaf 12, and the big leaf: the tree shrinks
	// to 16 leaves, and the tiles beyond it and the big leaf's record go.
	var removes []*wire.Proposal
	for l := 12; l < 34; l++ {
		removes = append(removes, removeProposal(treemath.LeafIndex(l)))
	}
	removes = append(removes, removeProposal(3))
	commit("remove 23", &group.CommitOptions{Proposals: removes})
	if n := len(alice.g.RatchetTree()); n > 31 || n < 17 {
		t.Fatalf("%d nodes after the removals, want a tree of 16 leaves", n)
	}
	if external() != 0 {
		t.Fatalf("%d nodes in records of their own after the big leaf's removal", external())
	}
	commit("add 40", add(40)) // 52 members: 64 leaves again
	// A self-update rewrites the tiles of alice's path: one per band.
	ch := commit("self-update", &group.CommitOptions{ForcePath: true})
	tiles := 0
	for _, r := range ch.Puts {
		if strings.HasPrefix(r.Key.Name, "tree/") {
			if !strings.HasPrefix(r.Key.Name, "tree/t/") {
				t.Errorf("the self-update wrote %s", r.Key.Name)
			}
			tiles++
		}
	}
	if tiles != 2 {
		t.Errorf("the self-update wrote %d tiles, want 2 (levels 0-3 and 4-6 of a 64-leaf tree)", tiles)
	}
}
