package treekem

import (
	"errors"
	"slices"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// roundTrip has sender create an UpdatePath on its own copy of g's tree and
// every other member process it on theirs; all must agree on the commit
// secret and the new tree, and every new private state must match it.
func roundTrip(t *testing.T, g *testGroup, sender treemath.LeafIndex, excluded []treemath.LeafIndex) {
	t.Helper()
	st := g.tree(t)
	res, err := createUpdatePath(st, &CreateParams{
		Sender: sender, GroupID: g.groupID, SigningKey: g.sig[sender],
		Excluded: excluded, GroupContext: g.groupContext(), Rand: newSeedReader([]byte{byte(sender)}),
	})
	if err != nil {
		t.Fatalf("sender %d: %v", sender, err)
	}
	defer res.Clear()
	if err := res.State.check(st); err != nil {
		t.Fatalf("sender %d: new state: %v", sender, err)
	}
	if res.CommitSecret.Len() != g.suite.HashLen() {
		t.Fatalf("commit secret of %d bytes", res.CommitSecret.Len())
	}
	// Receivers decode the path from the wire, as they would.
	enc, err := wire.Marshal(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range g.members() {
		if r == sender {
			continue
		}
		if slices.Contains(excluded, r) {
			// A new member joins through the Welcome with the path
			// secret of the common ancestor.
			ps, err := res.PathSecret(r)
			if err != nil {
				t.Fatalf("path secret for new member %d: %v", r, err)
			}
			if _, err := newJoinerState(st, r, g.priv[leafNode(r)], sender, ps); err != nil {
				t.Fatalf("joiner %d: %v", r, err)
			}
			continue
		}
		path, err := wire.Unmarshal[wire.UpdatePath](enc)
		if err != nil {
			t.Fatal(err)
		}
		rt := g.tree(t)
		old := g.state(t, r)
		before := old.String()
		out, err := processUpdatePath(rt, old, &ProcessParams{
			Sender: sender, GroupID: g.groupID, Path: path, Excluded: excluded, GroupContext: g.groupContext(),
		})
		if err != nil {
			t.Fatalf("sender %d receiver %d: %v", sender, r, err)
		}
		if !out.CommitSecret.Equal(res.CommitSecret) {
			t.Fatalf("sender %d receiver %d: commit secrets differ", sender, r)
		}
		if ps, err := res.PathSecret(r); err != nil || !ps.Equal(out.PathSecret) {
			t.Fatalf("sender %d receiver %d: path secret differs from the sender's (%v)", sender, r, err)
		}
		if string(rt.TreeHash()) != string(st.TreeHash()) {
			t.Fatalf("sender %d receiver %d: trees differ", sender, r)
		}
		if err := out.State.check(rt); err != nil {
			t.Fatalf("sender %d receiver %d: new state: %v", sender, r, err)
		}
		if old.String() != before {
			t.Fatalf("receiver %d: old state modified", r)
		}
		out.Clear()
	}
}

func TestRoundTrip(t *testing.T) {
	specs := []groupSpec{
		{members: 1},
		{members: 2},
		{members: 3},
		{members: 8},
		{members: 11, removed: []treemath.LeafIndex{2, 7}},
		{members: 16, removed: []treemath.LeafIndex{1, 4, 5, 6, 9, 14}, unmerged: []treemath.LeafIndex{7}},
	}
	for _, id := range ciphersuite.All() {
		for _, spec := range specs {
			spec.suite = id
			g := buildGroup(t, spec)
			if testing.Short() && id != 1 {
				continue
			}
			for _, s := range g.members() {
				roundTrip(t, g, s, nil)
			}
		}
	}
}

// TestRoundTripExcluded adds members "in the same Commit": they are unmerged
// leaves excluded from the resolutions, and join with the Welcome's path
// secret.
func TestRoundTripExcluded(t *testing.T) {
	g := buildGroup(t, groupSpec{suite: 1, members: 16, removed: []treemath.LeafIndex{3, 12}, unmerged: []treemath.LeafIndex{5, 6, 11}})
	for _, s := range g.members() {
		if s == 5 || s == 6 || s == 11 {
			continue
		}
		roundTrip(t, g, s, []treemath.LeafIndex{5, 6, 11})
	}
}

func TestCreateRejects(t *testing.T) {
	g := buildGroup(t, groupSpec{suite: 1, members: 4})
	gc := g.groupContext()
	for name, p := range map[string]CreateParams{
		"nil signing key": {Sender: 0, GroupContext: gc},
		"nil callback":    {Sender: 0, SigningKey: g.sig[0]},
		"sender outside":  {Sender: 4, SigningKey: g.sig[0], GroupContext: gc},
		"wrong key":       {Sender: 0, SigningKey: g.sig[1], GroupContext: gc},
	} {
		if _, err := createUpdatePath(g.tree(t), &p); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRoundTripExternal plays an external Commit (§12.4.2): the joiner takes
// a blank leaf and sends an UpdatePath from it with its own leaf node.
func TestRoundTripExternal(t *testing.T) {
	g := buildGroup(t, groupSpec{suite: 1, members: 6, removed: []treemath.LeafIndex{2}})
	joinerSig, err := g.suite.GenerateSigningKey(newSeedReader([]byte("joiner")))
	if err != nil {
		t.Fatal(err)
	}
	template := testLeaf(g.suite, 2, nil, joinerSig.PublicKey())
	st := g.tree(t)
	if _, err := createUpdatePath(st, &CreateParams{Sender: 2, GroupID: g.groupID, SigningKey: joinerSig, GroupContext: g.groupContext()}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("blank sender leaf without a template: %v", err)
	}
	st = g.tree(t)
	res, err := createUpdatePath(st, &CreateParams{Sender: 2, GroupID: g.groupID, SigningKey: joinerSig, LeafNode: template, GroupContext: g.groupContext()})
	if err != nil {
		t.Fatal(err)
	}
	if ln := st.Leaf(2); ln == nil || ln.LeafNodeSource != wire.LeafNodeSourceCommit || string(ln.Credential.Identity) != "member 2" {
		t.Fatalf("joiner's leaf: %+v", ln)
	}
	for _, r := range g.members() {
		rt := g.tree(t)
		out, err := processUpdatePath(rt, g.state(t, r), &ProcessParams{Sender: 2, GroupID: g.groupID, Path: res.Path, GroupContext: g.groupContext()})
		if err != nil {
			t.Fatalf("receiver %d: %v", r, err)
		}
		if !out.CommitSecret.Equal(res.CommitSecret) || string(rt.TreeHash()) != string(st.TreeHash()) {
			t.Fatalf("receiver %d disagrees", r)
		}
	}
}
