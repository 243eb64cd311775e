package ratchettree

import (
	"bytes"
	"slices"
	"testing"

	"github.com/mlsengine/mlsengine/mls/treemath"
)

// naiveResolution is §4.1.1 read literally, for comparison.
func naiveResolution(t *Tree, x uint32) []treemath.NodeIndex {
	if !t.IsBlank(treemath.NodeIndex(x)) {
		out := []treemath.NodeIndex{treemath.NodeIndex(x)}
		if p := t.ParentNode(treemath.NodeIndex(x)); p != nil {
			for _, l := range p.UnmergedLeaves {
				out = append(out, treemath.NodeIndex(2*l))
			}
		}
		return out
	}
	if x%2 == 0 {
		return nil
	}
	return append(naiveResolution(t, left(x)), naiveResolution(t, right(x))...)
}

// naiveFilteredPath is §4.1.2 read literally, on treemath.
func naiveFilteredPath(t *Tree, l treemath.LeafIndex) (path, copath []treemath.NodeIndex) {
	n := t.LeafCount()
	x, _ := treemath.LeafToNode(l, n)
	dp, _ := treemath.DirectPath(x, n)
	cp, _ := treemath.Copath(x, n)
	for i := range dp {
		if len(naiveResolution(t, uint32(cp[i]))) > 0 {
			path = append(path, dp[i])
			copath = append(copath, cp[i])
		}
	}
	return path, copath
}

// checkInvariants compares the cached hash with a full recomputation and
// resolutions and filtered paths with their literal definitions.
func checkInvariants(t *testing.T, s *sim, what string) {
	t.Helper()
	tree := s.tree
	if !bytes.Equal(tree.TreeHash(), tree.RecomputeTreeHash()) {
		t.Fatalf("after %s: incremental tree hash differs from recomputation", what)
	}
	for x := range tree.Width() {
		if got, want := tree.Resolution(treemath.NodeIndex(x)), naiveResolution(tree, x); !slices.Equal(got, want) {
			t.Fatalf("after %s: resolution(%d) = %v, want %v", what, x, got, want)
		}
	}
	for l := range treemath.LeafIndex(tree.LeafCount()) {
		path, _ := tree.FilteredDirectPath(l)
		copath, _ := tree.FilteredCopath(l)
		wp, wc := naiveFilteredPath(tree, l)
		if !slices.Equal(path, wp) || !slices.Equal(copath, wc) {
			t.Fatalf("after %s: filtered path of %d = %v/%v, want %v/%v", what, l, path, copath, wp, wc)
		}
	}
	// The tree round-trips through its encoding, and the structure
	// survives FromWire's checks.
	back, err := Decode(tree.Suite(), tree.Bytes())
	if err != nil {
		t.Fatalf("after %s: %v", what, err)
	}
	if !bytes.Equal(back.TreeHash(), tree.TreeHash()) {
		t.Fatalf("after %s: decoded tree hash differs", what)
	}
}

// TestRandomOperations drives trees with random adds, removes, updates and
// commits: after each step the incremental tree hash equals a full
// recomputation, resolutions and filtered paths match their definitions,
// and the tree validates (parent hashes, unmerged leaves, signatures).
func TestRandomOperations(t *testing.T) {
	steps := 150
	if testing.Short() {
		steps = 40
	}
	for _, suiteID := range []uint16{1, 2} {
		s := newSim(t, suiteID, uint64(suiteID))
		for i := range steps {
			what := s.step()
			checkInvariants(t, s, what)
			if i%5 == 0 || s.tree.MemberCount() < 8 {
				if err := s.validate(); err != nil {
					t.Fatalf("suite %d step %d (%s): %v", suiteID, i, what, err)
				}
			}
		}
		if err := s.validate(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRollback checks that Rollback restores the encoding, the tree hash
// and the change set exactly, after random operations that include
// extending and truncating the tree, and that nested checkpoints work.
func TestRollback(t *testing.T) {
	rounds := 60
	if testing.Short() {
		rounds = 15
	}
	s := newSim(t, 1, 99)
	for range 6 {
		s.step()
	}
	for round := range rounds {
		before := s.tree.Bytes()
		hash := s.tree.TreeHash()
		changed := s.tree.Changed()
		n := s.tree.LeafCount()
		cp := s.tree.Checkpoint()
		var inner Checkpoint
		var innerBytes []byte
		ops := 1 + s.rng.IntN(6)
		for i := range ops {
			if i == ops/2 {
				inner = s.tree.Checkpoint()
				innerBytes = s.tree.Bytes()
			}
			s.step()
			// Reading hashes between changes exercises the undo of
			// rehashed nodes.
			if s.rng.IntN(2) == 0 {
				s.tree.TreeHash()
			}
		}
		if round%2 == 0 {
			s.tree.Rollback(inner)
			if !bytes.Equal(s.tree.Bytes(), innerBytes) {
				t.Fatalf("round %d: inner rollback differs", round)
			}
			if !bytes.Equal(s.tree.TreeHash(), s.tree.RecomputeTreeHash()) {
				t.Fatalf("round %d: hash cache wrong after inner rollback", round)
			}
			s.step()
		}
		if round%3 == 0 {
			// Keep the change: release instead of rolling back.
			s.tree.Release(cp)
			if !bytes.Equal(s.tree.TreeHash(), s.tree.RecomputeTreeHash()) {
				t.Fatal("hash cache wrong after release")
			}
			continue
		}
		s.tree.Rollback(cp)
		if !bytes.Equal(s.tree.Bytes(), before) {
			t.Fatalf("round %d: rollback did not restore the encoding", round)
		}
		if s.tree.LeafCount() != n {
			t.Fatalf("round %d: leaf count %d, want %d", round, s.tree.LeafCount(), n)
		}
		if !bytes.Equal(s.tree.TreeHash(), hash) || !bytes.Equal(s.tree.RecomputeTreeHash(), hash) {
			t.Fatalf("round %d: rollback did not restore the tree hash", round)
		}
		if !slices.Equal(s.tree.Changed(), changed) {
			t.Fatalf("round %d: change set %v, want %v", round, s.tree.Changed(), changed)
		}
		// The simulation's key map may refer to removed members that the
		// rollback restored; rebuild it from the tree.
		s.resync()
		if round%10 == 0 {
			if err := s.validate(); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// TestChanged checks that the change set of an operation is its leaf and
// the direct path, O(log N), and that ResetChanged empties it.
func TestChanged(t *testing.T) {
	s := newSim(t, 1, 5)
	for range 20 {
		s.add()
	}
	s.tree.ResetChanged()
	l := s.randomMember()
	s.commit(l)
	x, _ := treemath.LeafToNode(l, s.tree.LeafCount())
	dp, _ := treemath.DirectPath(x, s.tree.LeafCount())
	want := append([]treemath.NodeIndex{x}, dp...)
	slices.Sort(want)
	got := s.tree.Changed()
	for _, c := range got {
		if !slices.Contains(want, c) {
			t.Errorf("changed %v includes %d, outside the leaf and its direct path %v", got, c, want)
		}
	}
	if !slices.Contains(got, x) {
		t.Errorf("changed %v lacks the leaf %d", got, x)
	}
	s.tree.ResetChanged()
	if len(s.tree.Changed()) != 0 {
		t.Error("ResetChanged left changes")
	}
	// A rollback after a reset reports the restored nodes as changed.
	cp := s.tree.Checkpoint()
	s.remove(s.randomMember())
	s.tree.ResetChanged()
	s.tree.Rollback(cp)
	if len(s.tree.Changed()) == 0 {
		t.Error("rollback after reset reported no change")
	}
}

// TestClone checks that a clone is independent of its original.
func TestClone(t *testing.T) {
	s := newSim(t, 1, 3)
	for range 10 {
		s.step()
	}
	c := s.tree.Clone()
	before := c.Bytes()
	hash := c.TreeHash()
	for range 10 {
		s.step()
	}
	if !bytes.Equal(c.Bytes(), before) || !bytes.Equal(c.TreeHash(), hash) || !bytes.Equal(c.RecomputeTreeHash(), hash) {
		t.Fatal("clone changed with its original")
	}
	if err := c.Validate(&ValidationOptions{GroupID: s.groupID}); err != nil {
		t.Fatal(err)
	}
}
