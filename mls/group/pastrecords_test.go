package group_test

import (
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// TestPastMembers sends late messages into epochs whose members later
// changed: carol's leaf goes to dave, bob's leaf changes, the tree grows.
// Alice, restored from her changes alone after every epoch (so that past
// members come from the stored deltas), verifies each late message with
// the key its sender had in its epoch: carol's message verifies only if
// her leaf's key in e0 is hers, not dave's.
func TestPastMembers(t *testing.T) {
	a, b, c, d := newClient(t, suite1, "alice", 41), newClient(t, suite1, "bob", 42), newClient(t, suite1, "carol", 43), newClient(t, suite1, "dave", 44)
	a.cfg.MaxPastEpochs = 3
	newGroupOf(t, a, b, c)
	st := newRecordStore(a.g)
	a.g.TakeChanges()
	reload := func(when string) {
		t.Helper()
		st.apply(a.g)
		st.mustMatch(t, a.g, when)
		a.g = st.restore(t, a, when)
	}
	protect := func(from *client, text string) *wire.MLSMessage {
		t.Helper()
		m, err := from.g.Protect([]byte(text), nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	e0c, e0b := protect(c, "carol in e0"), protect(b, "bob in e0")

	// e1: carol's leaf goes to dave.
	dkp := d.keyPackage(t, suite1)
	res := commitAll(t, a, &group.CommitOptions{Proposals: []*wire.Proposal{removeProposal(c.g.OwnLeafIndex()), addProposal(dkp)}}, b)
	var err error
	if d.g, err = group.Join(d.cfg, res.Welcome.Welcome, dkp, &group.JoinOptions{RatchetTree: a.g.RatchetTreeBytes()}); err != nil {
		t.Fatal(err)
	}
	if d.g.OwnLeafIndex() != c.g.OwnLeafIndex() {
		t.Fatalf("dave at leaf %d, carol was at %d", d.g.OwnLeafIndex(), c.g.OwnLeafIndex())
	}
	reload("e1")
	e1d, e1b := protect(d, "dave in e1"), protect(b, "bob in e1")

	// e2: bob commits with a path, which replaces his leaf.
	commitAll(t, b, &group.CommitOptions{ForcePath: true}, a, d)
	reload("e2")
	e2b := protect(b, "bob in e2")

	// e3: five more members, the tree grows from 4 leaves to 8.
	var props []*wire.Proposal
	for i := range 5 {
		props = append(props, addProposal(newClient(t, suite1, "m", 50+uint64(i)).keyPackage(t, suite1)))
	}
	commitAll(t, a, &group.CommitOptions{Proposals: props}, b, d)
	reload("e3")

	for _, m := range []struct {
		msg  *wire.MLSMessage
		text string
	}{{e0c, "carol in e0"}, {e0b, "bob in e0"}, {e1d, "dave in e1"}, {e1b, "bob in e1"}, {e2b, "bob in e2"}} {
		rm, err := a.g.Process(m.msg)
		if err != nil || string(rm.ApplicationData) != m.text {
			t.Fatalf("late %q: %v", m.text, err)
		}
		reload("after " + m.text)
	}
	if _, err := a.g.Process(e0c); !errors.Is(err, group.ErrReplay) {
		t.Fatalf("a second delivery: %v, want ErrReplay", err)
	}
}
