// Package storagetest is the conformance suite for storage.Backend
// implementations. A backend is conformant when Run passes, under the race
// detector:
//
//	func TestConformance(t *testing.T) {
//	    storagetest.Run(t, func(t *testing.T) storage.Backend {
//	        return mydb.Open(t.TempDir()) // a fresh, empty backend
//	    })
//	}
//
// Run calls newBackend once per subtest and expects an empty backend each
// time; close it with t.Cleanup. The subtests, which can be run alone with
// -run 'TestConformance/Name', check:
//   - RoundTrip: every class in group and client scope, group ids including
//     the empty one and binary ones, empty and MaxValueLen values,
//     MaxNameLen names, and MaxUnitRecords records in one unit.
//   - Versions, VersionNeverReused: the version fence, including a stale
//     handle from before the group was deleted and created again, whose
//     versions must stay above the old ones.
//   - NotFound: Load's three outcomes, Get's ErrNotFound, List's empty result.
//   - Overwrite: Public records are overwritten, KeyMaterial ones are
//     write-once (ErrWriteOnce), deleting a missing record is not an error.
//   - Atomicity: a unit that fails on a write-once violation in its middle,
//     a conflict or a validation error changes nothing, in any scope.
//   - InvalidUnits: every rule of storage.Unit.Validate and of Get and List
//     argument checking is enforced.
//   - DeleteGroup: removes every record of the group and only those.
//   - Isolation, Order: scopes, classes and prefixes do not leak into each
//     other; Load and List return records sorted by storage.Key.Compare.
//   - Copies: changing a slice after Apply, or one returned by Load, Get or
//     List, changes nothing stored, and returned values do not overlap.
//   - Erasure: with a storage.Inspector, deleted key material, key material
//     of rejected units and of deleted groups is absent from RawContents,
//     and live values are present. Skipped without an Inspector.
//   - Context: every method honours a cancelled context.
//   - Concurrent*: racing writers of one group (exactly one wins per
//     version, no lost update), writers of different groups (all succeed),
//     racing creators of one key-material name (exactly one wins), and
//     readers that must never see half of a unit.
//   - Retries: a unit applied again with the same ID is recognized (its
//     version returned, nothing applied twice) after up to
//     storage.RememberedUnits-1 later units, in group and client scope and
//     for group deletions; without an ID, or with a new ID on a stale
//     version, it is a conflict.
//   - UnknownOutcome: through a LossyBackend that loses the request or the
//     reply, retrying the same unit ends with it applied exactly once.
//   - DeletePrefixes: a prefix deletion removes (and, with an Inspector,
//     erases) exactly the records under whole segments of one scope and
//     class, counts as one operation, and is refused when a put or delete
//     of the unit falls under it.
//   - VersionRead, GetMany: Version agrees with Apply and Load; GetMany
//     returns the existing records of its keys, sorted and copied.
//   - Bounds: group ids up to storage.MaxGroupIDLen, units up to
//     storage.MaxUnitBytes and MaxUnitRecords on an existing group, and
//     nothing beyond; a unit creating its group beyond MaxUnitRecords.
//
// LossyBackend wraps any backend to lose requests and replies, for testing
// what sits on top of a backend.
//
// Crash atomicity cannot be checked from outside a backend; a persistent
// backend must test it itself, by killing the process at each write.
//
// With -short the concurrent subtests do fewer rounds.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlsengine/mlsengine/storage"
)

// Run runs the conformance suite against the backends newBackend returns.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	t.Helper()
	tests := []struct {
		name string
		f    func(t *testing.T, b storage.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"Versions", testVersions},
		{"VersionNeverReused", testVersionNeverReused},
		{"NotFound", testNotFound},
		{"Overwrite", testOverwrite},
		{"Atomicity", testAtomicity},
		{"InvalidUnits", testInvalidUnits},
		{"DeleteGroup", testDeleteGroup},
		{"Isolation", testIsolation},
		{"Order", testOrder},
		{"Copies", testCopies},
		{"Erasure", testErasure},
		{"Context", testContext},
		{"ConcurrentSameGroup", testConcurrentSameGroup},
		{"ConcurrentGroups", testConcurrentGroups},
		{"ConcurrentWriteOnce", testConcurrentWriteOnce},
		{"ConcurrentReaders", testConcurrentReaders},
		{"Retries", testRetries},
		{"UnknownOutcome", testUnknownOutcome},
		{"DeletePrefixes", testDeletePrefixes},
		{"VersionRead", testVersionRead},
		{"GetMany", testGetMany},
		{"Bounds", testBounds},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			if b == nil {
				t.Fatal("newBackend returned nil")
			}
			tc.f(t, b)
		})
	}
}

// ---- helpers ----

var client = storage.ClientScope()

func gk(gid []byte, c storage.Class, name string) storage.Key {
	return storage.Key{Scope: storage.GroupScope(gid), Class: c, Name: name}
}

func ck(c storage.Class, name string) storage.Key {
	return storage.Key{Scope: client, Class: c, Name: name}
}

func rec(k storage.Key, v []byte) storage.Record { return storage.Record{Key: k, Value: v} }

// secret returns n random bytes: a marker that cannot appear in a backend's
// contents by chance.
func secret(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func apply(t *testing.T, b storage.Backend, u *storage.Unit) uint64 {
	t.Helper()
	v, err := b.Apply(t.Context(), u)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if u.Scope.IsGroup() && !u.DeleteGroup {
		if v == 0 {
			t.Fatalf("Apply returned version 0 for a group unit")
		}
		if v <= u.Version {
			t.Fatalf("Apply returned version %d, not greater than the unit's %d", v, u.Version)
		}
	} else if v != 0 {
		t.Fatalf("Apply returned version %d for a unit that leaves no group, want 0", v)
	}
	return v
}

func applyErr(t *testing.T, b storage.Backend, u *storage.Unit, want error) {
	t.Helper()
	v, err := b.Apply(t.Context(), u)
	if !errors.Is(err, want) {
		t.Fatalf("Apply: got (%d, %v), want an error matching %q", v, err, want)
	}
}

func load(t *testing.T, b storage.Backend, gid []byte) *storage.GroupRecords {
	t.Helper()
	g, err := b.Load(t.Context(), gid)
	if err != nil {
		t.Fatalf("Load(%x): %v", gid, err)
	}
	if g == nil {
		t.Fatalf("Load(%x) returned nil and no error", gid)
	}
	return g
}

func get(t *testing.T, b storage.Backend, k storage.Key) []byte {
	t.Helper()
	v, err := b.Get(t.Context(), k)
	if err != nil {
		t.Fatalf("Get(%v): %v", k, err)
	}
	return v
}

func list(t *testing.T, b storage.Backend, s storage.Scope, c storage.Class, prefix string) []storage.Record {
	t.Helper()
	rs, err := b.List(t.Context(), s, c, prefix)
	if err != nil {
		t.Fatalf("List(%v, %v, %q): %v", s, c, prefix, err)
	}
	return rs
}

func wantNotFound(t *testing.T, b storage.Backend, k storage.Key) {
	t.Helper()
	v, err := b.Get(t.Context(), k)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(%v): got (%d bytes, %v), want ErrNotFound", k, len(v), err)
	}
}

func wantGroupNotFound(t *testing.T, b storage.Backend, gid []byte) {
	t.Helper()
	g, err := b.Load(t.Context(), gid)
	if !errors.Is(err, storage.ErrGroupNotFound) || !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Load(%x): got (%v, %v), want ErrGroupNotFound matching ErrNotFound", gid, g, err)
	}
}

// sameRecords compares records, values included, in order.
func sameRecords(got, want []storage.Record) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d records %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i].Key != want[i].Key {
			return fmt.Sprintf("record %d is %v, want %v", i, got[i].Key, want[i].Key)
		}
		if !bytes.Equal(got[i].Value, want[i].Value) {
			return fmt.Sprintf("record %v has the wrong value (%d bytes, want %d)", got[i].Key, len(got[i].Value), len(want[i].Value))
		}
	}
	return ""
}

func sorted(rs ...storage.Record) []storage.Record {
	out := append([]storage.Record(nil), rs...)
	storage.SortRecords(out)
	return out
}

// snapshot describes everything observable about the given groups and the
// client scope, for "nothing changed" checks.
func snapshot(t *testing.T, b storage.Backend, gids ...[]byte) string {
	t.Helper()
	var s strings.Builder
	s.WriteString(groupsSnapshot(t, b, gids...))
	for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
		for _, r := range list(t, b, client, c, "") {
			fmt.Fprintf(&s, "%v = %x\n", r.Key, r.Value)
		}
	}
	return s.String()
}

// groupsSnapshot is snapshot without the client scope.
func groupsSnapshot(t *testing.T, b storage.Backend, gids ...[]byte) string {
	t.Helper()
	var s strings.Builder
	for _, gid := range gids {
		g, err := b.Load(t.Context(), gid)
		switch {
		case errors.Is(err, storage.ErrGroupNotFound):
			fmt.Fprintf(&s, "group %x: not found\n", gid)
			continue
		case err != nil:
			t.Fatalf("Load(%x): %v", gid, err)
		}
		fmt.Fprintf(&s, "group %x: version %d\n", gid, g.Version)
		for _, r := range g.Records {
			fmt.Fprintf(&s, "  %v = %x\n", r.Key, r.Value)
		}
	}
	return s.String()
}

func unchanged(t *testing.T, b storage.Backend, before string, gids ...[]byte) {
	t.Helper()
	if after := snapshot(t, b, gids...); after != before {
		t.Errorf("state changed by a unit that failed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// ---- subtests ----

func testRoundTrip(t *testing.T, b storage.Backend) {
	long := bytes.Repeat([]byte{0xa5}, storage.MaxGroupIDLen)
	gids := [][]byte{{}, {0}, []byte("g"), {0xff, 0xfe, 0x00, 0x01}, long}
	maxName := strings.Repeat("n", maxNameSegment) + "/" + strings.Repeat("x", storage.MaxNameLen-maxNameSegment-1)
	names := []string{"a", "tree/node/17", "A-Z_a=z-09/x/Y", maxName}
	values := [][]byte{{}, {0}, secret(100), secret(storage.MaxValueLen)}

	for _, gid := range gids {
		var puts []storage.Record
		for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
			for i, name := range names {
				v := values[i%len(values)]
				if len(gid) != 0 && len(v) == storage.MaxValueLen {
					v = secret(64) // one group carries the big values
				}
				puts = append(puts, rec(gk(gid, c, name), bytes.Clone(v)))
			}
		}
		v := apply(t, b, &storage.Unit{Scope: storage.GroupScope(gid), Puts: puts})
		g := load(t, b, gid)
		if g.Version != v {
			t.Errorf("group %x: Load version %d, Apply returned %d", gid, g.Version, v)
		}
		if d := sameRecords(g.Records, sorted(puts...)); d != "" {
			t.Errorf("group %x: Load: %s", gid, d)
		}
		for _, r := range puts {
			if got := get(t, b, r.Key); !bytes.Equal(got, r.Value) {
				t.Errorf("Get(%v): wrong value", r.Key)
			}
			if val, ok := g.Find(r.Key.Class, r.Key.Name); !ok || !bytes.Equal(val, r.Value) {
				t.Errorf("GroupRecords.Find(%v): not found or wrong value", r.Key)
			}
		}
		for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
			var want []storage.Record
			for _, r := range puts {
				if r.Key.Class == c {
					want = append(want, r)
				}
			}
			if d := sameRecords(list(t, b, storage.GroupScope(gid), c, ""), sorted(want...)); d != "" {
				t.Errorf("group %x: List(%v): %s", gid, c, d)
			}
		}
	}

	// Client scope, in a client unit.
	var puts []storage.Record
	for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
		for i, name := range names {
			puts = append(puts, rec(ck(c, name), secret(1+50*i)))
		}
	}
	apply(t, b, &storage.Unit{Scope: client, Puts: puts})
	for _, r := range puts {
		if got := get(t, b, r.Key); !bytes.Equal(got, r.Value) {
			t.Errorf("Get(%v): wrong value", r.Key)
		}
	}
	for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
		var want []storage.Record
		for _, r := range puts {
			if r.Key.Class == c {
				want = append(want, r)
			}
		}
		if d := sameRecords(list(t, b, client, c, ""), sorted(want...)); d != "" {
			t.Errorf("client: List(%v): %s", c, d)
		}
	}
	// Client records are not a group's.
	for _, gid := range gids {
		for _, r := range load(t, b, gid).Records {
			if !r.Key.Scope.IsGroup() || !bytes.Equal(r.Key.Scope.GroupID(), gid) {
				t.Errorf("Load(%x) returned %v", gid, r.Key)
			}
		}
	}

	// A unit of MaxUnitRecords records, half of each class, half of them
	// client-wide.
	big := []byte("big")
	puts = puts[:0]
	for i := range storage.MaxUnitRecords {
		c := storage.Class(1 + i%2)
		name := "bulk/" + strconv.Itoa(i)
		if i%4 < 2 {
			puts = append(puts, rec(gk(big, c, name), secret(16)))
		} else {
			puts = append(puts, rec(ck(c, name), secret(16)))
		}
	}
	apply(t, b, &storage.Unit{Scope: storage.GroupScope(big), Puts: puts})
	if n := len(load(t, b, big).Records); n != storage.MaxUnitRecords/2 {
		t.Errorf("group with %d records put in one unit loads %d", storage.MaxUnitRecords/2, n)
	}
	for _, r := range puts {
		if got := get(t, b, r.Key); !bytes.Equal(got, r.Value) {
			t.Errorf("Get(%v) after a unit of MaxUnitRecords: wrong value", r.Key)
		}
	}
}

// maxNameSegment is the length of the first segment of the longest name the
// suite writes.
const maxNameSegment = 100

func testVersions(t *testing.T, b storage.Backend) {
	gid := []byte("versions")
	s := storage.GroupScope(gid)
	p := func(name string) []storage.Record {
		return []storage.Record{rec(gk(gid, storage.Public, name), []byte(name))}
	}

	applyErr(t, b, &storage.Unit{Scope: s, Version: 7, Puts: p("x")}, storage.ErrConflict)
	wantGroupNotFound(t, b, gid)

	v1 := apply(t, b, &storage.Unit{Scope: s, Puts: p("a")})
	if got := load(t, b, gid).Version; got != v1 {
		t.Fatalf("Load version %d, Apply returned %d", got, v1)
	}
	applyErr(t, b, &storage.Unit{Scope: s, Version: 0, Puts: p("b")}, storage.ErrConflict)
	v2 := apply(t, b, &storage.Unit{Scope: s, Version: v1, Puts: p("b")})
	applyErr(t, b, &storage.Unit{Scope: s, Version: v1, Puts: p("c")}, storage.ErrConflict)
	applyErr(t, b, &storage.Unit{Scope: s, Version: v2 + 1, Puts: p("c")}, storage.ErrConflict)
	// An empty unit still advances the version: it is how a caller fences
	// its handle without writing.
	v3 := apply(t, b, &storage.Unit{Scope: s, Version: v2})
	applyErr(t, b, &storage.Unit{Scope: s, Version: v2}, storage.ErrConflict)
	g := load(t, b, gid)
	if g.Version != v3 {
		t.Errorf("Load version %d, want %d", g.Version, v3)
	}
	if len(g.Records) != 2 {
		t.Errorf("conflicting units were applied: %v", g.Records)
	}
	if _, ok := g.Find(storage.Public, "c"); ok {
		t.Errorf("a unit that failed with ErrConflict was applied")
	}
	// A group created empty exists.
	empty := []byte("empty")
	ve := apply(t, b, &storage.Unit{Scope: storage.GroupScope(empty)})
	if g := load(t, b, empty); g.Version != ve || len(g.Records) != 0 {
		t.Errorf("empty group: Load = %d, %v; want %d, no records", g.Version, g.Records, ve)
	}
	// A client unit is not versioned.
	for range 2 {
		apply(t, b, &storage.Unit{Scope: client, Puts: []storage.Record{rec(ck(storage.Public, "c"), []byte("c"))}})
	}
}

func testVersionNeverReused(t *testing.T, b storage.Backend) {
	gid := []byte("phoenix")
	s := storage.GroupScope(gid)
	put := []storage.Record{rec(gk(gid, storage.Public, "p"), []byte("old"))}
	var stale, highest uint64
	for round := range 3 {
		v := apply(t, b, &storage.Unit{Scope: s, Puts: put})
		if v <= highest {
			t.Fatalf("round %d: re-created group got version %d, not above %d it had before deletion", round, v, highest)
		}
		v = apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: put})
		highest = v
		if stale != 0 {
			// A handle from before the deletion must not write into the
			// new group.
			applyErr(t, b, &storage.Unit{Scope: s, Version: stale, Puts: []storage.Record{rec(gk(gid, storage.Public, "p"), []byte("stale"))}}, storage.ErrConflict)
		}
		stale = v
		apply(t, b, &storage.Unit{Scope: s, Version: v, DeleteGroup: true})
	}
}

func testNotFound(t *testing.T, b storage.Backend) {
	gid := []byte("nf")
	wantGroupNotFound(t, b, gid)
	wantGroupNotFound(t, b, nil)
	for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
		wantNotFound(t, b, gk(gid, c, "a"))
		wantNotFound(t, b, ck(c, "a"))
		if rs := list(t, b, storage.GroupScope(gid), c, ""); len(rs) != 0 {
			t.Errorf("List of a missing group: %v", rs)
		}
		if rs := list(t, b, client, c, ""); len(rs) != 0 {
			t.Errorf("List of an empty client scope: %v", rs)
		}
	}

	v := apply(t, b, &storage.Unit{Scope: storage.GroupScope(gid), Puts: []storage.Record{
		rec(gk(gid, storage.Public, "a"), []byte("a")),
		rec(gk(gid, storage.KeyMaterial, "b"), []byte("b")),
	}})
	apply(t, b, &storage.Unit{Scope: client, Puts: []storage.Record{rec(ck(storage.Public, "a"), []byte("a"))}})
	// A missing record in an existing group; the same name in the other
	// class; the name's prefix.
	wantNotFound(t, b, gk(gid, storage.Public, "b"))
	wantNotFound(t, b, gk(gid, storage.KeyMaterial, "a"))
	wantNotFound(t, b, gk(gid, storage.Public, "a/b"))
	wantNotFound(t, b, ck(storage.KeyMaterial, "a"))
	// Not-found is distinct from the other errors.
	_, err := b.Load(t.Context(), []byte("other"))
	for _, e := range []error{storage.ErrConflict, storage.ErrWriteOnce, storage.ErrInvalidUnit, storage.ErrInvalidKey} {
		if errors.Is(err, e) {
			t.Errorf("Load of a missing group: %v matches %v", err, e)
		}
	}
	if errors.Is(storage.ErrNotFound, storage.ErrGroupNotFound) {
		t.Errorf("ErrNotFound matches ErrGroupNotFound")
	}

	// Deleting every record leaves an empty group; deleting the group
	// leaves none.
	v = apply(t, b, &storage.Unit{Scope: storage.GroupScope(gid), Version: v, Deletes: []storage.Key{
		gk(gid, storage.Public, "a"), gk(gid, storage.KeyMaterial, "b"),
	}})
	if g := load(t, b, gid); len(g.Records) != 0 || g.Version != v {
		t.Errorf("group with every record deleted: Load = %d, %v; want %d, no records", g.Version, g.Records, v)
	}
	apply(t, b, &storage.Unit{Scope: storage.GroupScope(gid), Version: v, DeleteGroup: true})
	wantGroupNotFound(t, b, gid)
	wantNotFound(t, b, gk(gid, storage.Public, "a"))
	// Deleting a group that does not exist, expecting that, is a no-op.
	apply(t, b, &storage.Unit{Scope: storage.GroupScope(gid), DeleteGroup: true})
	wantGroupNotFound(t, b, gid)
}

func testOverwrite(t *testing.T, b storage.Backend) {
	gid := []byte("ow")
	s := storage.GroupScope(gid)
	pub, km := gk(gid, storage.Public, "tree/node/1"), gk(gid, storage.KeyMaterial, "epoch/1/secrets")
	cpub, ckm := ck(storage.Public, "key-package/r"), ck(storage.KeyMaterial, "key-package/r")
	v := apply(t, b, &storage.Unit{Scope: s, Puts: []storage.Record{rec(pub, []byte("one")), rec(km, []byte("k1")), rec(cpub, []byte("one")), rec(ckm, []byte("k1"))}})

	// Public records are overwritten, in both scopes.
	v = apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(pub, []byte("two")), rec(cpub, []byte("two"))}})
	if got := get(t, b, pub); string(got) != "two" {
		t.Errorf("overwritten public record reads %q", got)
	}
	if got := get(t, b, cpub); string(got) != "two" {
		t.Errorf("overwritten public client record reads %q", got)
	}

	// Key material is write-once, in both scopes, even with the same value.
	for _, k := range []storage.Key{km, ckm} {
		for _, val := range [][]byte{[]byte("k2"), []byte("k1")} {
			before := snapshot(t, b, gid)
			applyErr(t, b, &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(k, val)}}, storage.ErrWriteOnce)
			applyErr(t, b, &storage.Unit{Scope: client, Puts: []storage.Record{rec(ckm, val)}}, storage.ErrWriteOnce)
			unchanged(t, b, before, gid)
		}
		if got := get(t, b, k); string(got) != "k1" {
			t.Errorf("%v reads %q after refused overwrites", k, got)
		}
	}

	// Deleting a missing record is not an error; a deleted key-material name
	// may be put again by a later unit.
	v = apply(t, b, &storage.Unit{Scope: s, Version: v, Deletes: []storage.Key{km, ckm, gk(gid, storage.KeyMaterial, "never"), ck(storage.Public, "never")}})
	wantNotFound(t, b, km)
	wantNotFound(t, b, ckm)
	apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(km, []byte("k3")), rec(ckm, []byte("k3"))}})
	if got := get(t, b, km); string(got) != "k3" {
		t.Errorf("re-created key material reads %q", got)
	}
	if got := get(t, b, ckm); string(got) != "k3" {
		t.Errorf("re-created client key material reads %q", got)
	}
}

func testAtomicity(t *testing.T, b storage.Backend) {
	gid, other := []byte("atomic"), []byte("bystander")
	s := storage.GroupScope(gid)
	v := apply(t, b, &storage.Unit{Scope: s, Puts: []storage.Record{
		rec(gk(gid, storage.Public, "context"), []byte("ctx1")),
		rec(gk(gid, storage.Public, "tree/node/0"), []byte("n0")),
		rec(gk(gid, storage.KeyMaterial, "epoch/1/secrets"), []byte("e1")),
		rec(gk(gid, storage.KeyMaterial, "epoch/1/hpke/0"), []byte("h1")),
	}})
	apply(t, b, &storage.Unit{Scope: storage.GroupScope(other), Puts: []storage.Record{rec(gk(other, storage.Public, "context"), []byte("o"))}})
	apply(t, b, &storage.Unit{Scope: client, Puts: []storage.Record{
		rec(ck(storage.KeyMaterial, "key-package/kp"), []byte("kp-priv")),
		rec(ck(storage.Public, "key-package/kp"), []byte("kp-pub")),
		rec(ck(storage.KeyMaterial, "signature/s"), []byte("sig")),
	}})
	gids := [][]byte{gid, other, []byte("new")}
	before := snapshot(t, b, gids...)

	// A commit-like unit whose write-once violation sits in the middle of
	// the puts, after writes and deletes of every kind. The violation is
	// tried on each kind of key material in turn.
	for _, bad := range []storage.Key{gk(gid, storage.KeyMaterial, "epoch/1/hpke/0"), ck(storage.KeyMaterial, "signature/s")} {
		u := &storage.Unit{Scope: s, Version: v,
			Puts: []storage.Record{
				rec(gk(gid, storage.Public, "context"), []byte("ctx2")),
				rec(gk(gid, storage.Public, "tree/node/2"), []byte("n2")),
				rec(gk(gid, storage.KeyMaterial, "epoch/2/secrets"), []byte("e2")),
				rec(ck(storage.Public, "key-package/new"), []byte("pub")),
				rec(ck(storage.KeyMaterial, "key-package/new"), []byte("priv")),
				rec(bad, []byte("again")),
				rec(gk(gid, storage.Public, "tree/node/4"), []byte("n4")),
				rec(gk(gid, storage.KeyMaterial, "epoch/2/hpke/0"), []byte("h2")),
			},
			Deletes: []storage.Key{
				gk(gid, storage.KeyMaterial, "epoch/1/secrets"),
				gk(gid, storage.Public, "tree/node/0"),
				ck(storage.KeyMaterial, "key-package/kp"),
				ck(storage.Public, "key-package/kp"),
			},
		}
		applyErr(t, b, u, storage.ErrWriteOnce)
		unchanged(t, b, before, gids...)
		// The same unit on a stale version, and as an invalid unit.
		u.Puts = append(u.Puts[:5:5], u.Puts[6:]...)
		u.Version = v + 1000
		applyErr(t, b, u, storage.ErrConflict)
		unchanged(t, b, before, gids...)
		u.Version = v
		u.Deletes = append(u.Deletes, ck(storage.KeyMaterial, "key-package/new"))
		applyErr(t, b, u, storage.ErrInvalidUnit)
		unchanged(t, b, before, gids...)
	}

	// A group creation that fails leaves no group.
	applyErr(t, b, &storage.Unit{Scope: storage.GroupScope([]byte("new")), Puts: []storage.Record{
		rec(gk([]byte("new"), storage.Public, "context"), []byte("c")),
		rec(ck(storage.KeyMaterial, "signature/s"), []byte("again")),
	}}, storage.ErrWriteOnce)
	unchanged(t, b, before, gids...)
	// A group deletion that fails deletes nothing.
	applyErr(t, b, &storage.Unit{Scope: s, Version: v, DeleteGroup: true, Puts: []storage.Record{
		rec(ck(storage.KeyMaterial, "signature/s"), []byte("again")),
	}}, storage.ErrWriteOnce)
	unchanged(t, b, before, gids...)
	applyErr(t, b, &storage.Unit{Scope: s, Version: v + 1000, DeleteGroup: true}, storage.ErrConflict)
	unchanged(t, b, before, gids...)
	// A failed client unit changes nothing either.
	applyErr(t, b, &storage.Unit{Scope: client,
		Puts: []storage.Record{
			rec(ck(storage.Public, "key-package/kp"), []byte("changed")),
			rec(ck(storage.KeyMaterial, "signature/s"), []byte("again")),
		},
		Deletes: []storage.Key{ck(storage.KeyMaterial, "key-package/kp")},
	}, storage.ErrWriteOnce)
	unchanged(t, b, before, gids...)

	// The version did not move: the original handle still works.
	apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(gk(gid, storage.KeyMaterial, "epoch/2/secrets"), []byte("e2"))}})
}

func testInvalidUnits(t *testing.T, b storage.Backend) {
	gid, other := []byte("valid"), []byte("other")
	s := storage.GroupScope(gid)
	v := apply(t, b, &storage.Unit{Scope: s, Puts: []storage.Record{rec(gk(gid, storage.Public, "a"), []byte("a"))}})
	gids := [][]byte{gid, other}
	before := snapshot(t, b, gids...)

	pub := func(name string) storage.Record { return rec(gk(gid, storage.Public, name), []byte("x")) }
	tooMany := make([]storage.Record, storage.MaxUnitRecords+1)
	for i := range tooMany {
		tooMany[i] = pub("n/" + strconv.Itoa(i))
	}
	half := make([]storage.Key, storage.MaxUnitRecords/2+1)
	for i := range half {
		half[i] = gk(gid, storage.Public, "d/"+strconv.Itoa(i))
	}
	badNames := []string{"", "/a", "a/", "a//b", "a.b", "a b", "a\x00", "ä", "a*", "a>", strings.Repeat("n", storage.MaxNameLen+1)}
	cases := []struct {
		name string
		u    *storage.Unit
	}{
		{"nil unit", nil},
		{"zero scope", &storage.Unit{Puts: []storage.Record{rec(ck(storage.Public, "a"), nil)}}},
		{"client unit with version", &storage.Unit{Scope: client, Version: 1}},
		{"client unit with DeleteGroup", &storage.Unit{Scope: client, DeleteGroup: true}},
		{"zero class", &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(storage.Key{Scope: s, Name: "a"}, nil)}}},
		{"unknown class", &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(storage.Key{Scope: s, Class: 3, Name: "a"}, nil)}}},
		{"zero key scope", &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(storage.Key{Class: storage.Public, Name: "a"}, nil)}}},
		{"put in another group", &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(gk(other, storage.Public, "a"), nil)}}},
		{"delete in another group", &storage.Unit{Scope: s, Version: v, Deletes: []storage.Key{gk(other, storage.Public, "a")}}},
		{"group put in client unit", &storage.Unit{Scope: client, Puts: []storage.Record{pub("b")}}},
		{"duplicate put", &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{pub("b"), pub("c"), pub("b")}}},
		{"duplicate delete", &storage.Unit{Scope: s, Version: v, Deletes: []storage.Key{gk(gid, storage.Public, "a"), gk(gid, storage.Public, "a")}}},
		{"put and delete", &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{pub("b")}, Deletes: []storage.Key{gk(gid, storage.Public, "b")}}},
		{"duplicate in a big unit", &storage.Unit{Scope: s, Version: v, Puts: append(tooMany[:100:100], tooMany[50])}},
		{"DeleteGroup with group put", &storage.Unit{Scope: s, Version: v, DeleteGroup: true, Puts: []storage.Record{pub("b")}}},
		{"DeleteGroup with group delete", &storage.Unit{Scope: s, Version: v, DeleteGroup: true, Deletes: []storage.Key{gk(gid, storage.Public, "a")}}},
		{"too many records", &storage.Unit{Scope: s, Version: v, Puts: tooMany}},
		{"too many puts and deletes", &storage.Unit{Scope: s, Version: v, Puts: tooMany[:storage.MaxUnitRecords/2], Deletes: half}},
		{"value too long", &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(gk(gid, storage.KeyMaterial, "big"), make([]byte, storage.MaxValueLen+1))}}},
	}
	for _, n := range badNames {
		cases = append(cases, struct {
			name string
			u    *storage.Unit
		}{fmt.Sprintf("name %.20q", n), &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{pub("ok"), rec(gk(gid, storage.Public, n), nil)}}})
		cases = append(cases, struct {
			name string
			u    *storage.Unit
		}{fmt.Sprintf("delete name %.20q", n), &storage.Unit{Scope: s, Version: v, Deletes: []storage.Key{ck(storage.KeyMaterial, n)}}})
	}
	for _, c := range cases {
		v, err := b.Apply(t.Context(), c.u)
		if !errors.Is(err, storage.ErrInvalidUnit) {
			t.Errorf("%s: Apply = (%d, %v), want ErrInvalidUnit", c.name, v, err)
		}
	}
	unchanged(t, b, before, gids...)

	// Get and List check their arguments.
	for _, n := range badNames {
		if _, err := b.Get(t.Context(), gk(gid, storage.Public, n)); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Get with name %.20q: %v, want ErrInvalidKey", n, err)
		}
	}
	for _, k := range []storage.Key{{Class: storage.Public, Name: "a"}, {Scope: s, Name: "a"}, {Scope: client, Class: 9, Name: "a"}} {
		if _, err := b.Get(t.Context(), k); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("Get(%v): %v, want ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"a", "/", "a//", "/a/", "a.b/", "a/b", strings.Repeat("n", storage.MaxNameLen) + "/"} {
		if _, err := b.List(t.Context(), s, storage.Public, p); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("List with prefix %.20q: %v, want ErrInvalidKey", p, err)
		}
	}
	if _, err := b.List(t.Context(), storage.Scope{}, storage.Public, ""); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("List with a zero scope: %v, want ErrInvalidKey", err)
	}
	if _, err := b.List(t.Context(), s, 0, ""); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("List with a zero class: %v, want ErrInvalidKey", err)
	}
}

func testDeleteGroup(t *testing.T, b storage.Backend) {
	a, other := []byte("doomed"), []byte("doomed2") // other's id extends a's
	var va uint64
	for _, gid := range [][]byte{a, other} {
		var puts []storage.Record
		for i := range 20 {
			puts = append(puts,
				rec(gk(gid, storage.Public, "tree/node/"+strconv.Itoa(i)), secret(40)),
				rec(gk(gid, storage.KeyMaterial, "epoch/"+strconv.Itoa(i)+"/secrets"), secret(32)))
		}
		v := apply(t, b, &storage.Unit{Scope: storage.GroupScope(gid), Puts: puts})
		if va == 0 {
			va = v
		}
	}
	apply(t, b, &storage.Unit{Scope: client, Puts: []storage.Record{
		rec(ck(storage.Public, "tree/node/1"), []byte("client")),
		rec(ck(storage.KeyMaterial, "epoch/1/secrets"), []byte("client")),
		rec(ck(storage.KeyMaterial, "key-package/kp"), []byte("kp")),
	}})
	otherBefore := groupsSnapshot(t, b, other)
	clientPub := list(t, b, client, storage.Public, "")

	// Leaving a group: delete it, delete a client record and put one, in one
	// unit.
	apply(t, b, &storage.Unit{Scope: storage.GroupScope(a), Version: va, DeleteGroup: true,
		Puts:    []storage.Record{rec(ck(storage.KeyMaterial, "left/doomed"), []byte("note"))},
		Deletes: []storage.Key{ck(storage.KeyMaterial, "key-package/kp")},
	})
	wantGroupNotFound(t, b, a)
	for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
		if rs := list(t, b, storage.GroupScope(a), c, ""); len(rs) != 0 {
			t.Errorf("List(%v) of a deleted group: %v", c, rs)
		}
	}
	for i := range 20 {
		wantNotFound(t, b, gk(a, storage.Public, "tree/node/"+strconv.Itoa(i)))
		wantNotFound(t, b, gk(a, storage.KeyMaterial, "epoch/"+strconv.Itoa(i)+"/secrets"))
	}
	wantNotFound(t, b, ck(storage.KeyMaterial, "key-package/kp"))
	if got := get(t, b, ck(storage.KeyMaterial, "left/doomed")); string(got) != "note" {
		t.Errorf("client put of a DeleteGroup unit reads %q", got)
	}
	if got := get(t, b, ck(storage.KeyMaterial, "epoch/1/secrets")); string(got) != "client" {
		t.Errorf("client record with a group record's name reads %q", got)
	}
	if d := sameRecords(list(t, b, client, storage.Public, ""), clientPub); d != "" {
		t.Errorf("client public records after DeleteGroup: %s", d)
	}
	if after := groupsSnapshot(t, b, other); after != otherBefore {
		t.Errorf("DeleteGroup of %q changed group %q:\nbefore:\n%s\nafter:\n%s", a, other, otherBefore, after)
	}
	// Stale deletion of the other group fails.
	before := snapshot(t, b, other)
	applyErr(t, b, &storage.Unit{Scope: storage.GroupScope(other), Version: va, DeleteGroup: true}, storage.ErrConflict)
	unchanged(t, b, before, other)
}

func testIsolation(t *testing.T, b storage.Backend) {
	// Ids that are prefixes of each other or differ only in a trailing zero
	// byte, and the empty id, must be distinct groups.
	gids := [][]byte{{}, []byte("a"), []byte("ab"), []byte("a\x00"), []byte("b"), {0}}
	names := []string{"x", "x/1", "x/y/2", "xy/1", "xy", "y/x/1"}
	val := func(s storage.Scope, c storage.Class, n string) []byte {
		return []byte(fmt.Sprintf("%v|%v|%s", s, c, n))
	}
	scopes := []storage.Scope{client}
	for _, gid := range gids {
		scopes = append(scopes, storage.GroupScope(gid))
	}
	for _, s := range scopes {
		var puts []storage.Record
		for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
			for _, n := range names {
				puts = append(puts, rec(storage.Key{Scope: s, Class: c, Name: n}, val(s, c, n)))
			}
		}
		apply(t, b, &storage.Unit{Scope: s, Puts: puts})
	}
	for _, s := range scopes {
		for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
			for _, n := range names {
				k := storage.Key{Scope: s, Class: c, Name: n}
				if got := get(t, b, k); !bytes.Equal(got, val(s, c, n)) {
					t.Errorf("Get(%v) = %q", k, got)
				}
			}
			// Prefixes match whole segments only.
			want := map[string][]string{
				"":     names,
				"x/":   {"x/1", "x/y/2"},
				"x/y/": {"x/y/2"},
				"xy/":  {"xy/1"},
				"y/":   {"y/x/1"},
				"z/":   nil,
			}
			for p, ns := range want {
				var w []storage.Record
				for _, n := range ns {
					w = append(w, rec(storage.Key{Scope: s, Class: c, Name: n}, val(s, c, n)))
				}
				if d := sameRecords(list(t, b, s, c, p), sorted(w...)); d != "" {
					t.Errorf("List(%v, %v, %q): %s", s, c, p, d)
				}
			}
		}
		if s.IsGroup() {
			g := load(t, b, s.GroupID())
			if len(g.Records) != 2*len(names) {
				t.Errorf("Load(%v): %d records, want %d", s, len(g.Records), 2*len(names))
			}
			for _, r := range g.Records {
				if r.Key.Scope != s || !bytes.Equal(r.Value, val(s, r.Key.Class, r.Key.Name)) {
					t.Errorf("Load(%v) returned %v = %q", s, r.Key, r.Value)
				}
			}
		}
	}
}

func testOrder(t *testing.T, b storage.Backend) {
	gid := []byte("order")
	names := []string{"z", "a", "tree/node/10", "tree/node/9", "tree/node/1", "A", "0", "a/b", "a-", "a_", "a=", "epoch/2", "epoch/10"}
	var puts []storage.Record
	for _, c := range []storage.Class{storage.KeyMaterial, storage.Public} {
		for _, n := range names {
			puts = append(puts, rec(gk(gid, c, n), []byte(n)))
		}
	}
	apply(t, b, &storage.Unit{Scope: storage.GroupScope(gid), Puts: puts})
	want := sorted(puts...)
	if want[0].Key.Class != storage.Public || want[0].Key.Name != "0" {
		t.Fatalf("internal error: storage.SortRecords order: %v", want[0].Key)
	}
	if d := sameRecords(load(t, b, gid).Records, want); d != "" {
		t.Errorf("Load order: %s", d)
	}
	if d := sameRecords(list(t, b, storage.GroupScope(gid), storage.Public, ""), want[:len(names)]); d != "" {
		t.Errorf("List order: %s", d)
	}
}

func testCopies(t *testing.T, b storage.Backend) {
	gid := []byte{1, 2, 3}
	s := storage.GroupScope(gid)
	pub, km, cpub := gk(gid, storage.Public, "p"), gk(gid, storage.KeyMaterial, "k"), ck(storage.Public, "c")
	mk := func() (p, k, c []byte) { return []byte("public"), []byte("secret"), []byte("client") }

	// Slices passed to Apply.
	p, k, c := mk()
	u := &storage.Unit{Scope: s, Puts: []storage.Record{rec(pub, p), rec(km, k), rec(cpub, c)}}
	v := apply(t, b, u)
	clear(p)
	clear(k)
	clear(c)
	u.Puts[0].Key.Name = "changed"
	p, k, c = mk()
	check := func(when string) {
		t.Helper()
		for kk, want := range map[storage.Key][]byte{pub: p, km: k, cpub: c} {
			if got := get(t, b, kk); !bytes.Equal(got, want) {
				t.Errorf("%s: %v reads %q, want %q", when, kk, got, want)
			}
		}
	}
	check("after changing the slices given to Apply")

	// Slices returned by Load, Get and List.
	g := load(t, b, gid)
	for _, r := range g.Records {
		clear(r.Value)
	}
	g.ClearKeyMaterial()
	check("after changing the slices Load returned")
	for _, kk := range []storage.Key{pub, km, cpub} {
		clear(get(t, b, kk))
	}
	check("after changing the slices Get returned")
	for _, r := range list(t, b, s, storage.Public, "") {
		clear(r.Value)
	}
	for _, r := range list(t, b, client, storage.Public, "") {
		clear(r.Value)
	}
	check("after changing the slices List returned")

	// Returned values do not overlap: appending to one does not change the
	// next.
	v = apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{
		rec(gk(gid, storage.Public, "p2"), []byte("second")),
		rec(gk(gid, storage.KeyMaterial, "k2"), []byte("second")),
	}})
	g = load(t, b, gid)
	for i := range g.Records {
		_ = append(g.Records[i].Value, bytes.Repeat([]byte{'!'}, 64)...)
	}
	for _, r := range g.Records {
		if bytes.Contains(r.Value, []byte("!")) {
			t.Errorf("appending to one value Load returned changed %v", r.Key)
		}
	}
	check("after appending to the slices Load returned")
	_ = v
}

func inspector(t *testing.T, b storage.Backend) storage.Inspector {
	t.Helper()
	in, ok := b.(storage.Inspector)
	if !ok {
		t.Skip("the backend does not implement storage.Inspector: erasure of deleted key material is not checked")
	}
	return in
}

// rawHas reports whether secret s appears anywhere in the backend's raw
// contents.
func rawHas(t *testing.T, in storage.Inspector, s []byte) bool {
	t.Helper()
	raw, err := in.RawContents(t.Context())
	if err != nil {
		t.Fatalf("RawContents: %v", err)
	}
	for _, r := range raw {
		if bytes.Contains(r, s) {
			return true
		}
	}
	return false
}

func testErasure(t *testing.T, b storage.Backend) {
	in := inspector(t, b)
	gid, keep := []byte("fs"), []byte("keep")
	s := storage.GroupScope(gid)
	type named struct {
		k storage.Key
		v []byte
	}
	mk := func(k storage.Key) named { return named{k, secret(32)} }
	e1 := mk(gk(gid, storage.KeyMaterial, "epoch/1/secrets"))
	h1 := mk(gk(gid, storage.KeyMaterial, "epoch/1/hpke/3"))
	g1 := mk(gk(gid, storage.KeyMaterial, "epoch/1/ratchet/0/0"))
	e2 := mk(gk(gid, storage.KeyMaterial, "epoch/2/secrets"))
	kp := mk(ck(storage.KeyMaterial, "key-package/kp"))
	psk := mk(ck(storage.KeyMaterial, "psk/ext"))
	kept := mk(gk(keep, storage.KeyMaterial, "epoch/1/secrets"))
	pubv := mk(gk(gid, storage.Public, "tree/node/0"))

	apply(t, b, &storage.Unit{Scope: client, Puts: []storage.Record{rec(kp.k, kp.v), rec(psk.k, psk.v)}})
	apply(t, b, &storage.Unit{Scope: storage.GroupScope(keep), Puts: []storage.Record{rec(kept.k, kept.v)}})
	v := apply(t, b, &storage.Unit{Scope: s, Puts: []storage.Record{rec(e1.k, e1.v), rec(h1.k, h1.v), rec(g1.k, g1.v), rec(pubv.k, pubv.v)},
		Deletes: []storage.Key{kp.k}})
	wantRaw := func(n named, present bool) {
		t.Helper()
		if got := rawHas(t, in, n.v); got != present {
			if present {
				t.Errorf("the value of live %v is not in RawContents: the Inspector does not show what the backend holds", n.k)
			} else {
				t.Errorf("the value of %v is still in the backend's raw contents", n.k)
			}
		}
	}
	// Joining: the key package's private key dies with the unit that
	// creates the group.
	wantRaw(kp, false)
	for _, n := range []named{e1, h1, g1, psk, kept, pubv} {
		wantRaw(n, true)
	}

	// A decryption consumes a generation key; an epoch change deletes the
	// old epoch's secrets and HPKE key. Each unit writes the replacement
	// under a new name.
	g2 := mk(gk(gid, storage.KeyMaterial, "epoch/1/ratchet/0/1"))
	v = apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(g2.k, g2.v)}, Deletes: []storage.Key{g1.k}})
	wantRaw(g1, false)
	wantRaw(g2, true)
	v = apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(e2.k, e2.v)}, Deletes: []storage.Key{e1.k, h1.k, g2.k}})
	for _, n := range []named{e1, h1, g2} {
		wantRaw(n, false)
	}
	wantRaw(e2, true)

	// Key material of rejected units never lingers: not after a conflict, a
	// write-once violation or a cancelled context.
	r1, r2, r3 := mk(gk(gid, storage.KeyMaterial, "epoch/3/secrets")), mk(gk(gid, storage.KeyMaterial, "epoch/3/hpke/0")), mk(ck(storage.KeyMaterial, "signature/new"))
	rejected := []storage.Record{rec(r1.k, r1.v), rec(r2.k, r2.v), rec(r3.k, r3.v)}
	applyErr(t, b, &storage.Unit{Scope: s, Version: v + 1000, Puts: rejected}, storage.ErrConflict)
	applyErr(t, b, &storage.Unit{Scope: s, Version: v, Puts: append(rejected[:3:3], rec(e2.k, secret(32)))}, storage.ErrWriteOnce)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Apply(ctx, &storage.Unit{Scope: s, Version: v, Puts: rejected}); err == nil {
		t.Errorf("Apply with a cancelled context succeeded")
	}
	for _, n := range []named{r1, r2, r3} {
		wantRaw(n, false)
	}

	// Deleting the group erases all its key material, and only its.
	apply(t, b, &storage.Unit{Scope: s, Version: v, DeleteGroup: true, Deletes: []storage.Key{psk.k}})
	for _, n := range []named{e2, psk} {
		wantRaw(n, false)
	}
	wantRaw(kept, true)
}

func testContext(t *testing.T, b storage.Backend) {
	gid := []byte("ctx")
	s := storage.GroupScope(gid)
	v := apply(t, b, &storage.Unit{Scope: s, Puts: []storage.Record{rec(gk(gid, storage.Public, "a"), []byte("a"))}})
	before := snapshot(t, b, gid, []byte("ctx2"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	units := []*storage.Unit{
		{Scope: s, Version: v, Puts: []storage.Record{rec(gk(gid, storage.Public, "b"), []byte("b"))}},
		{Scope: s, Version: v, DeleteGroup: true},
		{Scope: storage.GroupScope([]byte("ctx2"))},
		{Scope: client, Puts: []storage.Record{rec(ck(storage.KeyMaterial, "c"), []byte("c"))}},
	}
	for i, u := range units {
		if nv, err := b.Apply(ctx, u); !errors.Is(err, context.Canceled) {
			t.Errorf("unit %d: Apply with a cancelled context = (%d, %v), want context.Canceled", i, nv, err)
		}
	}
	unchanged(t, b, before, gid, []byte("ctx2"))
	if g, err := b.Load(ctx, gid); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context = (%v, %v), want context.Canceled", g, err)
	}
	if val, err := b.Get(ctx, gk(gid, storage.Public, "a")); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = (%q, %v), want context.Canceled", val, err)
	}
	if rs, err := b.List(ctx, s, storage.Public, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context = (%v, %v), want context.Canceled", rs, err)
	}
	if in, ok := b.(storage.Inspector); ok {
		if _, err := in.RawContents(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("RawContents with a cancelled context: %v, want context.Canceled", err)
		}
	}
}

func rounds(n int) int {
	if testing.Short() {
		return max(n/5, 2)
	}
	return n
}

// testConcurrentSameGroup races writers of one group. In each round every
// writer loads the group, all wait until all have loaded, and then all apply
// a unit built on that same version, which increments a counter record and
// adds a record of the writer's own: exactly one must win, the others must
// fail with ErrConflict, and no increment may be lost.
func testConcurrentSameGroup(t *testing.T, b storage.Backend) {
	gid := []byte("contended")
	s := storage.GroupScope(gid)
	counter := gk(gid, storage.Public, "counter")
	apply(t, b, &storage.Unit{Scope: s, Puts: []storage.Record{rec(counter, []byte("0"))}})
	const writers = 8
	var wins []string
	for round := range rounds(30) {
		var (
			loaded, applied sync.WaitGroup
			start           = make(chan struct{})
			mu              sync.Mutex
			winners         []string
			loadedAt        [writers]uint64 // one slot per writer
		)
		loaded.Add(writers)
		for w := range writers {
			applied.Go(func() {
				g, err := b.Load(t.Context(), gid)
				loaded.Done()
				<-start
				if err != nil {
					t.Errorf("Load: %v", err)
					return
				}
				loadedAt[w] = g.Version
				cv, _ := g.Find(storage.Public, "counter")
				n, err := strconv.Atoi(string(cv))
				if err != nil {
					t.Errorf("counter record %q: %v", cv, err)
					return
				}
				mine := fmt.Sprintf("w/%d/%d", round, w)
				nv, err := b.Apply(t.Context(), &storage.Unit{Scope: s, Version: g.Version, Puts: []storage.Record{
					rec(counter, []byte(strconv.Itoa(n+1))),
					rec(gk(gid, storage.KeyMaterial, mine), []byte(mine)),
				}})
				switch {
				case errors.Is(err, storage.ErrConflict):
				case err != nil:
					t.Errorf("Apply: %v", err)
				case nv <= g.Version:
					t.Errorf("Apply on version %d returned version %d", g.Version, nv)
				default:
					mu.Lock()
					winners = append(winners, mine)
					mu.Unlock()
				}
			})
		}
		loaded.Wait()
		close(start)
		applied.Wait()
		for _, v := range loadedAt {
			if v != loadedAt[0] {
				t.Fatalf("round %d: writers loaded different versions of an unchanged group: %v", round, loadedAt)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: %d of %d units built on the same version were applied, want exactly 1 (%v)", round, len(winners), writers, winners)
		}
		wins = append(wins, winners...)
		// Free running: each writer tries once more without waiting for the
		// others, and a loser retries until it wins, as the engine would.
		var free sync.WaitGroup
		for w := range writers / 2 {
			free.Go(func() {
				for try := 0; ; try++ {
					g, err := b.Load(t.Context(), gid)
					if err != nil {
						t.Errorf("Load: %v", err)
						return
					}
					cv, _ := g.Find(storage.Public, "counter")
					n, _ := strconv.Atoi(string(cv))
					mine := fmt.Sprintf("f/%d/%d/%d", round, w, try)
					_, err = b.Apply(t.Context(), &storage.Unit{Scope: s, Version: g.Version, Puts: []storage.Record{
						rec(counter, []byte(strconv.Itoa(n+1))),
						rec(gk(gid, storage.KeyMaterial, mine), []byte(mine)),
					}})
					if errors.Is(err, storage.ErrConflict) {
						continue
					}
					if err != nil {
						t.Errorf("Apply: %v", err)
						return
					}
					mu.Lock()
					wins = append(wins, mine)
					mu.Unlock()
					return
				}
			})
		}
		free.Wait()
	}
	g := load(t, b, gid)
	cv, _ := g.Find(storage.Public, "counter")
	if string(cv) != strconv.Itoa(len(wins)) {
		t.Errorf("counter is %s after %d successful increments: updates were lost", cv, len(wins))
	}
	for _, w := range wins {
		if v, ok := g.Find(storage.KeyMaterial, w); !ok || string(v) != w {
			t.Errorf("record %s of a successful unit is missing", w)
		}
	}
	if len(g.Records) != 1+len(wins) {
		t.Errorf("%d records after %d successful units, want %d", len(g.Records), len(wins), 1+len(wins))
	}
}

func testConcurrentGroups(t *testing.T, b storage.Backend) {
	const groups = 16
	n := rounds(25)
	var wg sync.WaitGroup
	for i := range groups {
		wg.Go(func() {
			gid := []byte("g" + strconv.Itoa(i))
			s := storage.GroupScope(gid)
			var v uint64
			for r := range n {
				u := &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{
					rec(gk(gid, storage.Public, "round"), []byte(strconv.Itoa(r))),
					rec(gk(gid, storage.KeyMaterial, "epoch/"+strconv.Itoa(r)), []byte{byte(i), byte(r)}),
					rec(ck(storage.Public, "last/"+strconv.Itoa(i)), []byte(strconv.Itoa(r))),
				}}
				if r > 0 {
					u.Deletes = []storage.Key{gk(gid, storage.KeyMaterial, "epoch/"+strconv.Itoa(r-1))}
				}
				nv, err := b.Apply(t.Context(), u)
				if err != nil {
					t.Errorf("group %d round %d: Apply: %v", i, r, err)
					return
				}
				v = nv
			}
			g, err := b.Load(t.Context(), gid)
			if err != nil {
				t.Errorf("group %d: Load: %v", i, err)
				return
			}
			if g.Version != v || len(g.Records) != 2 {
				t.Errorf("group %d: Load = version %d, %d records; want %d, 2", i, g.Version, len(g.Records), v)
			}
			if r, _ := g.Find(storage.Public, "round"); string(r) != strconv.Itoa(n-1) {
				t.Errorf("group %d: round record %q", i, r)
			}
		})
	}
	wg.Wait()
	if rs := list(t, b, client, storage.Public, "last/"); len(rs) != groups {
		t.Errorf("%d client records written by concurrent group units, want %d", len(rs), groups)
	}
}

func testConcurrentWriteOnce(t *testing.T, b storage.Backend) {
	const writers = 16
	for round := range rounds(10) {
		k := ck(storage.KeyMaterial, "signature/"+strconv.Itoa(round))
		var wins atomic.Int32
		var winner atomic.Value
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				val := []byte("writer-" + strconv.Itoa(w))
				// Half the writers race in a group unit, half in a client
				// unit.
				u := &storage.Unit{Scope: client, Puts: []storage.Record{rec(k, val)}}
				if w%2 == 1 {
					gid := []byte(fmt.Sprintf("wo/%d/%d", round, w))
					u = &storage.Unit{Scope: storage.GroupScope(gid), Puts: []storage.Record{rec(k, val), rec(gk(gid, storage.Public, "p"), val)}}
				}
				_, err := b.Apply(t.Context(), u)
				switch {
				case err == nil:
					wins.Add(1)
					winner.Store(string(val))
				case !errors.Is(err, storage.ErrWriteOnce):
					t.Errorf("Apply: %v, want nil or ErrWriteOnce", err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d writers created the same key-material record, want exactly 1", round, n)
		}
		if got := get(t, b, k); string(got) != winner.Load().(string) {
			t.Errorf("round %d: record holds %q, the winner wrote %q", round, got, winner.Load())
		}
	}
}

// testConcurrentReaders checks that no Load, Get or List sees half a unit:
// every unit writes the same value to a pair of records (one per class) and to
// a pair of client records.
func testConcurrentReaders(t *testing.T, b storage.Backend) {
	gid := []byte("torn")
	s := storage.GroupScope(gid)
	pubs := []storage.Key{gk(gid, storage.Public, "a"), gk(gid, storage.Public, "b/c")}
	clients := []storage.Key{ck(storage.Public, "x"), ck(storage.Public, "y/z")}
	unit := func(v uint64, i int) *storage.Unit {
		val := []byte(strconv.Itoa(i))
		u := &storage.Unit{Scope: s, Version: v}
		for _, k := range append(append(pubs[:len(pubs):len(pubs)], clients...), gk(gid, storage.KeyMaterial, "k/"+strconv.Itoa(i))) {
			u.Puts = append(u.Puts, rec(k, val))
		}
		if i > 0 {
			u.Deletes = []storage.Key{gk(gid, storage.KeyMaterial, "k/"+strconv.Itoa(i-1))}
		}
		return u
	}
	v := apply(t, b, unit(0, 0))
	n := rounds(200)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var last uint64
			for {
				select {
				case <-done:
					return
				default:
				}
				runtime.Gosched() // let the writer in on one CPU
				g, err := b.Load(t.Context(), gid)
				if err != nil {
					t.Errorf("Load: %v", err)
					return
				}
				if g.Version < last {
					t.Errorf("Load went back from version %d to %d", last, g.Version)
				}
				last = g.Version
				a, _ := g.Find(storage.Public, "a")
				bc, _ := g.Find(storage.Public, "b/c")
				if !bytes.Equal(a, bc) {
					t.Errorf("Load saw half a unit: a=%q b/c=%q", a, bc)
					return
				}
				var kmNames []string
				for _, r := range g.Records {
					if r.Key.Class == storage.KeyMaterial {
						kmNames = append(kmNames, r.Key.Name)
					}
				}
				if len(kmNames) != 1 || kmNames[0] != "k/"+string(a) {
					t.Errorf("Load saw half a unit: a=%q with key material %v", a, kmNames)
					return
				}
				rs, err := b.List(t.Context(), client, storage.Public, "")
				if err != nil {
					t.Errorf("List: %v", err)
					return
				}
				if len(rs) != 2 || !bytes.Equal(rs[0].Value, rs[1].Value) {
					t.Errorf("List saw half a unit: %v", rs)
					return
				}
			}
		})
	}
	for i := 1; i <= n; i++ {
		v = apply(t, b, unit(v, i))
	}
	close(done)
	wg.Wait()
}
