package memory

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/mlsengine/mlsengine/storage"
)

// These tests look inside the Backend to check what the conformance suite
// cannot see from outside: the bytes of a dropped value are overwritten
// before the Backend lets go of them.

func stored(t *testing.T, b *Backend, k storage.Key) []byte {
	t.Helper()
	if k.Scope.IsGroup() {
		e, ok := b.groups[k.Scope].recs[rkey{k.Class, k.Name}]
		if !ok {
			t.Fatalf("%v not stored", k)
		}
		return e.v
	}
	v, ok := b.client[rkey{k.Class, k.Name}]
	if !ok {
		t.Fatalf("%v not stored", k)
	}
	return v
}

func wantZero(t *testing.T, what string, v []byte) {
	t.Helper()
	if len(v) == 0 {
		t.Fatalf("%s: test value is empty", what)
	}
	if !bytes.Equal(v, make([]byte, len(v))) {
		t.Errorf("%s: dropped value not overwritten: %x", what, v)
	}
}

func TestDroppedValuesAreCleared(t *testing.T) {
	ctx := t.Context()
	b := New()
	gid := []byte("g")
	s := storage.GroupScope(gid)
	k := func(c storage.Class, n string) storage.Key { return storage.Key{Scope: s, Class: c, Name: n} }
	c := func(cl storage.Class, n string) storage.Key {
		return storage.Key{Scope: storage.ClientScope(), Class: cl, Name: n}
	}
	val := func() []byte { return []byte("0123456789abcdef") }
	v, err := b.Apply(ctx, &storage.Unit{Scope: s, Puts: []storage.Record{
		{Key: k(storage.KeyMaterial, "epoch/1/secrets"), Value: val()},
		{Key: k(storage.KeyMaterial, "epoch/1/hpke/0"), Value: val()},
		{Key: k(storage.Public, "tree/node/0"), Value: val()},
		{Key: k(storage.Public, "context"), Value: val()},
		{Key: c(storage.KeyMaterial, "key-package/a"), Value: val()},
		{Key: c(storage.Public, "key-package/a"), Value: val()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	epoch1 := stored(t, b, k(storage.KeyMaterial, "epoch/1/secrets"))
	node0 := stored(t, b, k(storage.Public, "tree/node/0"))
	kpPriv := stored(t, b, c(storage.KeyMaterial, "key-package/a"))
	kpPub := stored(t, b, c(storage.Public, "key-package/a"))

	// Delete in group and client scope; overwrite of a public record.
	v, err = b.Apply(ctx, &storage.Unit{Scope: s, Version: v,
		Puts:    []storage.Record{{Key: k(storage.Public, "tree/node/0"), Value: []byte("new")}, {Key: c(storage.Public, "key-package/a"), Value: []byte("new")}},
		Deletes: []storage.Key{k(storage.KeyMaterial, "epoch/1/secrets"), c(storage.KeyMaterial, "key-package/a")},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantZero(t, "deleted group key material", epoch1)
	wantZero(t, "deleted client key material", kpPriv)
	wantZero(t, "overwritten public group record", node0)
	wantZero(t, "overwritten public client record", kpPub)

	// A caller's copy from Load is not touched by the Backend's clearing.
	g, err := b.Load(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	hpke := stored(t, b, k(storage.KeyMaterial, "epoch/1/hpke/0"))
	ctxRec := stored(t, b, k(storage.Public, "context"))
	if _, err := b.Apply(ctx, &storage.Unit{Scope: s, Version: v, DeleteGroup: true}); err != nil {
		t.Fatal(err)
	}
	wantZero(t, "key material of a deleted group", hpke)
	wantZero(t, "public record of a deleted group", ctxRec)
	if got, _ := g.Find(storage.KeyMaterial, "epoch/1/hpke/0"); !bytes.Equal(got, val()) {
		t.Errorf("clearing the Backend's copy changed the caller's: %q", got)
	}
	if len(b.groups) != 0 {
		t.Errorf("deleted group still indexed")
	}
}

// TestLoadSeparatesClasses checks that the public values Load returns lie
// in memory apart from its key material, so a caller keeping public values
// does not keep copies of key material alive, and that ClearKeyMaterial leaves
// public values intact.
func TestLoadSeparatesClasses(t *testing.T) {
	ctx := t.Context()
	b := New()
	gid := []byte("g")
	s := storage.GroupScope(gid)
	var puts []storage.Record
	for _, n := range []string{"a", "b", "c"} {
		puts = append(puts,
			storage.Record{Key: storage.Key{Scope: s, Class: storage.Public, Name: n}, Value: []byte("pub-" + n)},
			storage.Record{Key: storage.Key{Scope: s, Class: storage.KeyMaterial, Name: n}, Value: []byte("key-" + n)})
	}
	if _, err := b.Apply(ctx, &storage.Unit{Scope: s, Puts: puts}); err != nil {
		t.Fatal(err)
	}
	g, err := b.Load(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	// The address range spanned by all public values, including their
	// spare capacity, must not meet any key-material value.
	lo, hi := ^uintptr(0), uintptr(0)
	var pubs [][]byte
	for _, r := range g.Records {
		if r.Key.Class == storage.Public {
			pubs = append(pubs, r.Value)
			p := uintptr(unsafe.Pointer(unsafe.SliceData(r.Value)))
			lo, hi = min(lo, p), max(hi, p+uintptr(cap(r.Value)))
		}
	}
	for _, r := range g.Records {
		if r.Key.Class == storage.KeyMaterial {
			p := uintptr(unsafe.Pointer(unsafe.SliceData(r.Value)))
			if p < hi && p+uintptr(len(r.Value)) > lo {
				t.Errorf("key material %v lies among the public values", r.Key)
			}
		}
	}
	g.ClearKeyMaterial()
	for i, n := range []string{"a", "b", "c"} {
		if string(pubs[i]) != "pub-"+n {
			t.Errorf("ClearKeyMaterial changed public value %q", pubs[i])
		}
	}
	for _, r := range g.Records {
		if r.Key.Class == storage.KeyMaterial && r.Value != nil {
			t.Errorf("ClearKeyMaterial left %v", r.Key)
		}
	}
}
