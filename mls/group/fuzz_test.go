package group_test

import (
	"errors"
	"testing"

	"github.com/mlsengine/mlsengine/mls/group"
)

// FuzzProcess feeds mutated messages of a live group to a member: no input
// may panic, and a rejected one must leave the member's state unchanged.
func FuzzProcess(f *testing.F) {
	for _, private := range []bool{false, true} {
		tr := newTrio(f, private)
		m1, _, err := tr.alice.g.ProposeExternalPSK([]byte("psk"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(private, m1.Bytes())
		m2, _, _ := tr.alice.g.ProposeUpdate(nil)
		f.Add(private, m2.Bytes())
		tr.alice.g.TakeChanges()
		res, err := tr.alice.g.Commit(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(private, res.Commit.Bytes())
		tr.alice.g.ClearPendingCommit()
		if private {
			app, err := tr.carol.g.Protect([]byte("hi"), []byte("aad"))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(private, app.Bytes())
		}
	}
	trios := map[bool]*trio{false: newTrio(f, false), true: newTrio(f, true)}
	f.Fuzz(func(t *testing.T, private bool, b []byte) {
		c := trios[private].bob
		c.g.TakeChanges()
		before := fingerprint(c.g)
		rm, err := c.g.ProcessBytes(b)
		if err != nil {
			if fingerprint(c.g) != before || !c.g.TakeChanges().Empty() {
				t.Fatalf("rejected input (%v) changed the state", err)
			}
			if errors.Is(err, group.ErrInvalidArgument) {
				t.Fatalf("input reported as a caller error: %v", err)
			}
			return
		}
		if rm.Commit != nil {
			rm.Commit.Discard()
		}
	})
}
