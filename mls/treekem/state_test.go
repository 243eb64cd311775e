package treekem

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

func nodeIndexes(ps *PrivateState) []treemath.NodeIndex {
	var ns []treemath.NodeIndex
	for _, nk := range ps.Nodes() {
		ns = append(ns, nk.Node)
	}
	return ns
}

// TestStatePruning checks which keys a receiver keeps (§7.5: replaced key
// pairs are deleted).
func TestStatePruning(t *testing.T) {
	process := func(t *testing.T, g *testGroup, tr func() publicTree, sender, receiver treemath.LeafIndex) *PrivateState {
		t.Helper()
		res, err := createUpdatePath(tr(), &CreateParams{Sender: sender, GroupID: g.groupID, SigningKey: g.sig[sender], GroupContext: g.groupContext()})
		if err != nil {
			t.Fatal(err)
		}
		rt := tr()
		out, err := processUpdatePath(rt, g.state(t, receiver), &ProcessParams{Sender: sender, GroupID: g.groupID, Path: res.Path, GroupContext: g.groupContext()})
		if err != nil {
			t.Fatal(err)
		}
		if err := out.State.check(rt); err != nil {
			t.Fatal(err)
		}
		return out.State
	}
	t.Run("filtered out of the sender's path", func(t *testing.T) {
		// 8 leaves, members 0 to 5: sender 4's direct path is 9, 11, 7;
		// 11 is filtered out (leaves 6 and 7 are blank) and blanked.
		// Receiver 5 held 9, 11, 7 and keeps new 9 and 7.
		g := buildGroup(t, groupSpec{suite: 1, members: 6})
		if got := nodeIndexes(g.state(t, 5)); !slices.Equal(got, []treemath.NodeIndex{9, 11, 7}) {
			t.Fatalf("before: %v", got)
		}
		ps := process(t, g, func() publicTree { return g.tree(t) }, 4, 5)
		if got := nodeIndexes(ps); !slices.Equal(got, []treemath.NodeIndex{9, 7}) {
			t.Fatalf("after: %v", got)
		}
	})
	t.Run("blanked by a proposal", func(t *testing.T) {
		// Leaf 3 is removed before the path (blanking 6, 5, 3, 7); receiver
		// 2 held 5, 3, 7 and keeps new 3 and 7.
		g := buildGroup(t, groupSpec{suite: 1, members: 8})
		tr := func() publicTree {
			tr := g.tree(t)
			if err := tr.RemoveLeaf(3); err != nil {
				t.Fatal(err)
			}
			return tr
		}
		ps := process(t, g, tr, 0, 2)
		if got := nodeIndexes(ps); !slices.Equal(got, []treemath.NodeIndex{3, 7}) {
			t.Fatalf("after: %v", got)
		}
	})
}

// TestNoKeyInOutput checks that printing a state or a result never shows
// key material.
func TestNoKeyInOutput(t *testing.T) {
	g := buildGroup(t, groupSpec{suite: 1, members: 4})
	st := g.state(t, 1)
	res, err := createUpdatePath(g.tree(t), &CreateParams{Sender: 0, GroupID: g.groupID, SigningKey: g.sig[0], GroupContext: g.groupContext(), Rand: newSeedReader([]byte("x"))})
	if err != nil {
		t.Fatal(err)
	}
	out, err := processUpdatePath(g.tree(t), st, &ProcessParams{Sender: 0, GroupID: g.groupID, Path: res.Path, GroupContext: g.groupContext()})
	if err != nil {
		t.Fatal(err)
	}
	var secrets [][]byte
	for _, k := range []*PrivateState{st, res.State, out.State} {
		secrets = append(secrets, k.LeafKey().Bytes().Bytes())
		for _, nk := range k.Nodes() {
			secrets = append(secrets, nk.Key.Bytes().Bytes())
		}
	}
	secrets = append(secrets, res.CommitSecret.Bytes(), out.PathSecret.Bytes())
	var printed strings.Builder
	for _, v := range []any{st, *st, res, *res, out, *out, res.State, out.State} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			fmt.Fprintf(&printed, verb+"\n", v)
		}
	}
	s := printed.String()
	for _, sec := range secrets {
		for _, form := range []string{fmt.Sprintf("%x", sec), fmt.Sprintf("%X", sec), string(sec), fmt.Sprint([]byte(sec))} {
			if i := strings.Index(s, form); i >= 0 {
				t.Fatalf("key material %q printed at:\n%s", form, s[max(0, i-300):i+len(form)])
			}
		}
	}
	if got := st.String(); got != "treekem.PrivateState{leaf: 1, nodes: [1 3]}" {
		t.Fatalf("String() = %q", got)
	}
	_ = wire.UpdatePath{}
}
