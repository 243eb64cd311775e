package group_test

import (
	"errors"
	"github.com/mlsengine/mlsengine/storage"
	"slices"
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

// FuzzRestore replaces one record of a member's state with arbitrary
// bytes: Restore must not panic, and must report any failure as
// ErrCorruptState.
func FuzzRestore(f *testing.F) {
	members := richMembers(f)
	records := make([][]storage.Record, len(members))
	for i, m := range members {
		records[i] = m.g.Records()
		for j, r := range records[i] {
			f.Add(uint8(i), uint16(j), r.Value)
		}
	}
	if len(records[0]) == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, member uint8, record uint16, value []byte) {
		i := int(member) % len(members)
		recs := slices.Clone(records[i])
		recs[int(record)%len(recs)].Value = value
		m := members[i]
		if _, err := group.Restore(m.cfg, m.id.SigningKey, recs); err != nil && !errors.Is(err, group.ErrCorruptState) {
			t.Fatalf("%s: %v", recs[int(record)%len(recs)].Key.Name, err)
		}
	})
}

// FuzzRestoreKeyPackageBundle feeds arbitrary record values to
// RestoreKeyPackageBundle: no panic, and every failure is ErrCorruptState.
func FuzzRestoreKeyPackageBundle(f *testing.F) {
	c := newClient(f, suite1, "k", 9)
	for _, opts := range []*group.KeyPackageOptions{nil, {LastResort: true}} {
		b, err := group.NewKeyPackage(suite1, c.id, c.cfg, opts)
		if err != nil {
			f.Fatal(err)
		}
		recs := b.Records()
		f.Add(recs[0].Value, recs[1].Value)
	}
	f.Fuzz(func(t *testing.T, public, keyMaterial []byte) {
		if _, err := group.RestoreKeyPackageBundle(public, keyMaterial, c.id.SigningKey); err != nil && !errors.Is(err, group.ErrCorruptState) {
			t.Fatal(err)
		}
	})
}
