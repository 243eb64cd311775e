package storagetest

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/mlsengine/mlsengine/storage"
)

// The subtests of the parts of the contract a store over a network needs:
// recognized retries, unknown outcomes, prefix deletions, version reads,
// batch reads and the size bounds.

// unitID returns a distinct, nonzero UnitID for test unit n.
func unitID(n int) storage.UnitID {
	var id storage.UnitID
	copy(id[:], "storagetest-")
	id[15] = byte(n)
	id[14] = byte(n >> 8)
	id[13] = 1
	return id
}

func testRetries(t *testing.T, b storage.Backend) {
	gid, other := []byte("retry"), []byte("retry-other")
	s := storage.GroupScope(gid)
	km := rec(gk(gid, storage.KeyMaterial, "epoch/1/secret"), secret(32))
	first := &storage.Unit{Scope: s, ID: unitID(1), Puts: []storage.Record{rec(gk(gid, storage.Public, "context"), []byte("c1")), km}}
	v1 := apply(t, b, first)
	want := snapshot(t, b, gid)

	// The same unit again: recognized, not a conflict nor a write-once
	// violation, and nothing is applied a second time.
	if v, err := b.Apply(t.Context(), first); err != nil || v != v1 {
		t.Fatalf("retry of an applied unit: got (%d, %v), want (%d, nil)", v, err, v1)
	}
	unchanged(t, b, want, gid)

	// Recognized after RememberedUnits-1 later units.
	v := v1
	for i := 2; i <= storage.RememberedUnits; i++ {
		v = apply(t, b, &storage.Unit{Scope: s, Version: v, ID: unitID(i), Puts: []storage.Record{rec(gk(gid, storage.Public, "context"), []byte("c"+strconv.Itoa(i)))}})
	}
	want = snapshot(t, b, gid)
	if got, err := b.Apply(t.Context(), first); err != nil || got != v1 {
		t.Fatalf("retry after %d later units: got (%d, %v), want (%d, nil)", storage.RememberedUnits-1, got, err, v1)
	}
	unchanged(t, b, want, gid)

	// Recognition does not lift the fence for other units: a new id with a
	// stale version conflicts, and so does a retried unit without an id.
	applyErr(t, b, &storage.Unit{Scope: s, Version: v1, ID: unitID(100), Puts: []storage.Record{rec(gk(gid, storage.Public, "x"), nil)}}, storage.ErrConflict)
	anon := &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(gk(gid, storage.Public, "anon"), []byte("a"))}}
	v = apply(t, b, anon)
	applyErr(t, b, anon, storage.ErrConflict)

	// Ids are remembered per scope: the same id in another group is a unit
	// of its own.
	vo := apply(t, b, &storage.Unit{Scope: storage.GroupScope(other), ID: unitID(1), Puts: []storage.Record{rec(gk(other, storage.Public, "context"), []byte("o"))}})
	if vo == v1 {
		t.Errorf("a unit of another group with a reused id got the first group's version %d", v1)
	}

	// Client units: a retried put of key material is recognized, not
	// ErrWriteOnce.
	cu := &storage.Unit{Scope: client, ID: unitID(200), Puts: []storage.Record{rec(ck(storage.KeyMaterial, "psk/retry"), secret(32))}}
	apply(t, b, cu)
	if got, err := b.Apply(t.Context(), cu); err != nil || got != 0 {
		t.Fatalf("retry of a client unit: got (%d, %v), want (0, nil)", got, err)
	}

	// A retried group deletion is recognized, although the group is gone.
	del := &storage.Unit{Scope: s, Version: v, ID: unitID(300), DeleteGroup: true}
	apply(t, b, del)
	if got, err := b.Apply(t.Context(), del); err != nil || got != 0 {
		t.Fatalf("retry of a group deletion: got (%d, %v), want (0, nil)", got, err)
	}
	wantGroupNotFound(t, b, gid)
}

func testUnknownOutcome(t *testing.T, b storage.Backend) {
	gid := []byte("lossy")
	s := storage.GroupScope(gid)
	for _, f := range []Fault{LoseRequest, LoseReply} {
		t.Run(f.String(), func(t *testing.T) {
			lb := Lossy(b, Script(f))
			base, err := b.Version(t.Context(), gid)
			if errors.Is(err, storage.ErrGroupNotFound) {
				base, err = 0, nil
			}
			if err != nil {
				t.Fatal(err)
			}
			km := rec(gk(gid, storage.KeyMaterial, "epoch/"+f.String()+"/secret"), secret(32))
			u := &storage.Unit{Scope: s, Version: base, ID: unitID(int(f) + 10), Puts: []storage.Record{km, rec(gk(gid, storage.Public, "context"), []byte(f.String()))}}
			if _, err := lb.Apply(t.Context(), u); !errors.Is(err, storage.ErrUnknownOutcome) {
				t.Fatalf("the lossy wrapper returned %v, want ErrUnknownOutcome", err)
			}
			// Another writer's unit may not come between: the retry must
			// find the unit either applied or still applicable.
			v, err := lb.Apply(t.Context(), u)
			if err != nil {
				t.Fatalf("retry after a %v: %v", f, err)
			}
			g := load(t, b, gid)
			if g.Version != v {
				t.Errorf("retry after a %v returned version %d, the group is at %d", f, v, g.Version)
			}
			if v2, err := lb.Apply(t.Context(), u); err != nil || v2 != v {
				t.Errorf("a second retry: got (%d, %v), want (%d, nil)", v2, err, v)
			}
			if got, ok := g.Find(storage.KeyMaterial, km.Key.Name); !ok || !bytes.Equal(got, km.Value) {
				t.Errorf("the unit's key material is not stored after the retry")
			}
			if n := lb.Faults(); n != 1 {
				t.Errorf("the wrapper injected %d faults, want 1", n)
			}
		})
	}
}

func testDeletePrefixes(t *testing.T, b storage.Backend) {
	gid := []byte("prefix")
	s := storage.GroupScope(gid)
	names := []string{"epoch/1/a", "epoch/1/b/c", "epoch/10/x", "epoch/2/y", "epoch1/z", "epoch/1"}
	var puts []storage.Record
	vals := map[storage.Key][]byte{}
	for _, c := range []storage.Class{storage.Public, storage.KeyMaterial} {
		for _, n := range names {
			r := rec(gk(gid, c, n), secret(24))
			puts = append(puts, r)
			vals[r.Key] = r.Value
		}
	}
	cl := rec(ck(storage.KeyMaterial, "kp/1/x"), secret(24))
	puts = append(puts, cl, rec(ck(storage.KeyMaterial, "kp/2/x"), secret(24)))
	v := apply(t, b, &storage.Unit{Scope: s, Puts: puts})

	v = apply(t, b, &storage.Unit{Scope: s, Version: v, DeletePrefixes: []storage.KeyPrefix{
		{Scope: s, Class: storage.KeyMaterial, Prefix: "epoch/1/"},
		{Scope: client, Class: storage.KeyMaterial, Prefix: "kp/1/"},
	}})
	gone := map[string]bool{"epoch/1/a": true, "epoch/1/b/c": true}
	g := load(t, b, gid)
	if g.Version != v {
		t.Errorf("Load version %d, Apply returned %d", g.Version, v)
	}
	for k, val := range vals {
		got, ok := g.Find(k.Class, k.Name)
		if k.Class == storage.KeyMaterial && gone[k.Name] {
			if ok {
				t.Errorf("%v survived the deletion of its prefix", k)
			}
			continue
		}
		if !ok || !bytes.Equal(got, val) {
			t.Errorf("%v is gone or changed after deleting a prefix that does not cover it", k)
		}
	}
	wantNotFound(t, b, cl.Key)
	get(t, b, ck(storage.KeyMaterial, "kp/2/x"))
	if in, ok := b.(storage.Inspector); ok {
		for k, val := range vals {
			if k.Class == storage.KeyMaterial && gone[k.Name] && rawHas(t, in, val) {
				t.Errorf("the value of %v, deleted by prefix, is still in the backend's raw contents", k)
			}
		}
		if rawHas(t, in, cl.Value) {
			t.Errorf("the value of %v, deleted by prefix, is still in the backend's raw contents", cl.Key)
		}
	}

	// A prefix is one operation however many records it removes.
	many := make([]storage.Record, storage.MaxUnitRecords-1)
	for i := range many {
		many[i] = rec(gk(gid, storage.Public, "many/"+strconv.Itoa(i)), []byte{byte(i)})
	}
	v = apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: many, DeletePrefixes: []storage.KeyPrefix{{Scope: s, Class: storage.Public, Prefix: "epoch/"}}})
	v = apply(t, b, &storage.Unit{Scope: s, Version: v, DeletePrefixes: []storage.KeyPrefix{{Scope: s, Class: storage.Public, Prefix: "many/"}}})
	for _, r := range load(t, b, gid).Records {
		if r.Key.Class == storage.Public && (strings.HasPrefix(r.Key.Name, "many/") || strings.HasPrefix(r.Key.Name, "epoch/")) {
			t.Errorf("%v survived the deletion of its prefix", r.Key)
		}
	}
	// Invalid prefixes and overlaps are refused, changing nothing.
	before := snapshot(t, b, gid)
	pk := storage.KeyPrefix{Scope: s, Class: storage.KeyMaterial, Prefix: "epoch/2/"}
	for name, u := range map[string]*storage.Unit{
		"put under a deleted prefix":    {Scope: s, Version: v, Puts: []storage.Record{rec(gk(gid, storage.KeyMaterial, "epoch/2/new"), nil)}, DeletePrefixes: []storage.KeyPrefix{pk}},
		"delete under a deleted prefix": {Scope: s, Version: v, Deletes: []storage.Key{gk(gid, storage.KeyMaterial, "epoch/2/y")}, DeletePrefixes: []storage.KeyPrefix{pk}},
		"empty prefix":                  {Scope: s, Version: v, DeletePrefixes: []storage.KeyPrefix{{Scope: s, Class: storage.Public}}},
		"prefix without a slash":        {Scope: s, Version: v, DeletePrefixes: []storage.KeyPrefix{{Scope: s, Class: storage.Public, Prefix: "epoch"}}},
		"prefix of another group":       {Scope: s, Version: v, DeletePrefixes: []storage.KeyPrefix{{Scope: storage.GroupScope([]byte("x")), Class: storage.Public, Prefix: "a/"}}},
		"prefix in a deleted group":     {Scope: s, Version: v, DeleteGroup: true, DeletePrefixes: []storage.KeyPrefix{pk}},
		"prefix of no class":            {Scope: s, Version: v, DeletePrefixes: []storage.KeyPrefix{{Scope: s, Prefix: "a/"}}},
		"prefixes count as operations":  {Scope: s, Version: v, Puts: many, DeletePrefixes: []storage.KeyPrefix{pk, {Scope: s, Class: storage.Public, Prefix: "zz/"}}},
	} {
		if _, err := b.Apply(t.Context(), u); !errors.Is(err, storage.ErrInvalidUnit) {
			t.Errorf("%s: Apply returned %v, want ErrInvalidUnit", name, err)
		}
	}
	unchanged(t, b, before, gid)

	// A prefix that matches nothing, and one of an empty class, are no-ops
	// that still advance the version like any unit.
	v2 := apply(t, b, &storage.Unit{Scope: s, Version: v, DeletePrefixes: []storage.KeyPrefix{{Scope: s, Class: storage.Public, Prefix: "nothing/"}}})
	if v2 <= v {
		t.Errorf("a unit deleting an empty prefix returned version %d after %d", v2, v)
	}
}

func testVersionRead(t *testing.T, b storage.Backend) {
	gid := []byte("version-read")
	if v, err := b.Version(t.Context(), gid); !errors.Is(err, storage.ErrGroupNotFound) {
		t.Errorf("Version of a missing group: got (%d, %v), want ErrGroupNotFound", v, err)
	}
	s := storage.GroupScope(gid)
	v := apply(t, b, &storage.Unit{Scope: s, Puts: []storage.Record{rec(gk(gid, storage.Public, "a"), nil)}})
	for range 3 {
		got, err := b.Version(t.Context(), gid)
		if err != nil || got != v || load(t, b, gid).Version != v {
			t.Fatalf("Version: got (%d, %v), want %d as Apply and Load report it", got, err, v)
		}
		v = apply(t, b, &storage.Unit{Scope: s, Version: v, Puts: []storage.Record{rec(gk(gid, storage.Public, "a"), []byte{byte(v)})}})
	}
	// A group that exists but holds no record has a version too.
	v = apply(t, b, &storage.Unit{Scope: s, Version: v, Deletes: []storage.Key{gk(gid, storage.Public, "a")}})
	if got, err := b.Version(t.Context(), gid); err != nil || got != v {
		t.Errorf("Version of an empty group: got (%d, %v), want %d", got, err, v)
	}
	apply(t, b, &storage.Unit{Scope: s, Version: v, DeleteGroup: true})
	if got, err := b.Version(t.Context(), gid); !errors.Is(err, storage.ErrGroupNotFound) {
		t.Errorf("Version of a deleted group: got (%d, %v), want ErrGroupNotFound", got, err)
	}
}

func testGetMany(t *testing.T, b storage.Backend) {
	gid := []byte("get-many")
	s := storage.GroupScope(gid)
	g1 := rec(gk(gid, storage.Public, "a"), []byte("ga"))
	g2 := rec(gk(gid, storage.KeyMaterial, "b"), secret(16))
	c1 := rec(ck(storage.Public, "kp/1"), []byte("c1"))
	c2 := rec(ck(storage.KeyMaterial, "kp/1"), secret(16))
	apply(t, b, &storage.Unit{Scope: s, Puts: []storage.Record{g1, g2, c1, c2}})
	keys := []storage.Key{c2.Key, gk(gid, storage.Public, "missing"), g2.Key, c1.Key, g1.Key, c2.Key, gk([]byte("nope"), storage.Public, "a")}
	rs, err := b.GetMany(t.Context(), keys)
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if d := sameRecords(rs, sorted(g1, g2, c1, c2)); d != "" {
		t.Errorf("GetMany: %s", d)
	}
	if len(rs) > 0 {
		rs[0].Value[0] ^= 1
		if got := get(t, b, rs[0].Key); bytes.Equal(got, rs[0].Value) {
			t.Errorf("changing a value GetMany returned changed the stored one")
		}
	}
	if rs, err := b.GetMany(t.Context(), nil); err != nil || len(rs) != 0 {
		t.Errorf("GetMany of no keys: got (%v, %v)", rs, err)
	}
	tooMany := make([]storage.Key, storage.MaxReadKeys+1)
	for i := range tooMany {
		tooMany[i] = ck(storage.Public, "k/"+strconv.Itoa(i))
	}
	if _, err := b.GetMany(t.Context(), tooMany); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("GetMany of %d keys: %v, want ErrInvalidKey", len(tooMany), err)
	}
	if _, err := b.GetMany(t.Context(), tooMany[:storage.MaxReadKeys]); err != nil {
		t.Errorf("GetMany of MaxReadKeys keys: %v", err)
	}
	if _, err := b.GetMany(t.Context(), []storage.Key{g1.Key, {Scope: client, Class: storage.Public, Name: "bad//name"}}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("GetMany with an invalid key: %v, want ErrInvalidKey", err)
	}
}

func testBounds(t *testing.T, b storage.Backend) {
	longest := bytes.Repeat([]byte{0xa5}, storage.MaxGroupIDLen)
	apply(t, b, &storage.Unit{Scope: storage.GroupScope(longest), Puts: []storage.Record{rec(gk(longest, storage.Public, "a"), []byte("x"))}})
	load(t, b, longest)
	tooLong := append(longest, 0)
	applyErr(t, b, &storage.Unit{Scope: storage.GroupScope(tooLong), Puts: []storage.Record{rec(gk(tooLong, storage.Public, "a"), nil)}}, storage.ErrInvalidUnit)
	if _, err := b.Load(t.Context(), tooLong); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Load of a group id of %d bytes: %v, want ErrInvalidKey", len(tooLong), err)
	}
	if _, err := b.Version(t.Context(), tooLong); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Version of a group id of %d bytes: %v, want ErrInvalidKey", len(tooLong), err)
	}
	if _, err := b.Get(t.Context(), gk(tooLong, storage.Public, "a")); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("Get in a group id of %d bytes: %v, want ErrInvalidKey", len(tooLong), err)
	}

	// A unit that creates its group may hold more than MaxUnitRecords
	// operations: it is the group's whole state.
	created := []byte("created")
	var bulk []storage.Record
	for i := range storage.MaxUnitRecords + 1 {
		bulk = append(bulk, rec(gk(created, storage.Public, "n/"+strconv.Itoa(i)), []byte{byte(i)}))
	}
	cv := apply(t, b, &storage.Unit{Scope: storage.GroupScope(created), Puts: bulk})
	if n := len(load(t, b, created).Records); n != len(bulk) {
		t.Errorf("a creating unit of %d records stored %d", len(bulk), n)
	}
	// On an existing group, a unit of exactly MaxUnitBytes is accepted,
	// one byte more is not, and so is a unit of MaxUnitRecords+1.
	applyErr(t, b, &storage.Unit{Scope: storage.GroupScope(created), Version: cv, Puts: bulk}, storage.ErrInvalidUnit)
	gid := []byte("bytes")
	v := apply(t, b, &storage.Unit{Scope: storage.GroupScope(gid), Puts: []storage.Record{rec(gk(gid, storage.Public, "a"), nil)}})
	var puts []storage.Record
	left := storage.MaxUnitBytes
	for i := 0; left > 0; i++ {
		name := "big/" + strconv.Itoa(i)
		n := min(storage.MaxValueLen, left-len(name))
		puts = append(puts, rec(gk(gid, storage.Public, name), bytes.Repeat([]byte{byte(i)}, n)))
		left -= len(name) + n
	}
	u := &storage.Unit{Scope: storage.GroupScope(gid), Version: v, Puts: puts}
	if u.Bytes() != storage.MaxUnitBytes {
		t.Fatalf("test unit of %d bytes, want %d", u.Bytes(), storage.MaxUnitBytes)
	}
	last := &puts[len(puts)-1]
	last.Value = append(last.Value, 0)
	if len(last.Value) <= storage.MaxValueLen {
		applyErr(t, b, u, storage.ErrInvalidUnit)
	}
	last.Value = last.Value[:len(last.Value)-1]
	apply(t, b, u)
	if n := len(load(t, b, gid).Records); n != len(puts)+1 {
		t.Errorf("a unit of MaxUnitBytes stored %d of its %d records", n, len(puts))
	}
}
