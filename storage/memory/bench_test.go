package memory_test

import (
	"strconv"
	"testing"

	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// commitUnit is a typical commit of a group of about 500 members: about 30
// tree nodes along the path and its copath resolution rewritten, the group
// context, transcript hash and confirmation tag, the new epoch's secrets,
// resumption PSK and HPKE keys written under new names (40 puts), and the
// old epoch's key material deleted (10 deletes).
func commitUnit(gid []byte, version uint64, epoch int) *storage.Unit {
	s := storage.GroupScope(gid)
	u := &storage.Unit{Scope: s, Version: version}
	pub := func(name string, n int) {
		u.Puts = append(u.Puts, storage.Record{Key: storage.Key{Scope: s, Class: storage.Public, Name: name}, Value: make([]byte, n)})
	}
	e, prev := strconv.Itoa(epoch%2), strconv.Itoa((epoch-1)%2)
	for i := range 27 {
		pub("tree/node/"+strconv.Itoa(i*37), 170)
	}
	pub("context", 120)
	pub("transcript/interim", 32)
	pub("confirmation-tag", 32)
	for i := range 10 {
		name := "epoch/" + e + "/key/" + strconv.Itoa(i)
		u.Puts = append(u.Puts, storage.Record{Key: storage.Key{Scope: s, Class: storage.KeyMaterial, Name: name}, Value: make([]byte, 32)})
		u.Deletes = append(u.Deletes, storage.Key{Scope: s, Class: storage.KeyMaterial, Name: "epoch/" + prev + "/key/" + strconv.Itoa(i)})
	}
	return u
}

func BenchmarkApplyCommit(b *testing.B) {
	ctx := b.Context()
	be := memory.New()
	gid := []byte("bench-group-0123456789abcdef")
	// A group of about 1000 records to commit into.
	v, err := be.Apply(ctx, bigGroupUnit(gid))
	if err != nil {
		b.Fatal(err)
	}
	// Two units used in turn: the key material of epoch parity p replaces
	// that of 1-p, so the names stay write-once. Building units is the
	// engine's cost, not the backend's, and is kept out of the loop.
	units := [2]*storage.Unit{commitUnit(gid, 0, 2), commitUnit(gid, 0, 1)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u := units[i%2]
		u.Version = v
		if v, err = be.Apply(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
}

// bigGroupUnit creates a group of 1000 records, about what a 500-member
// group stores by tree node: 999 nodes of 170 bytes, plus some key material.
func bigGroupUnit(gid []byte) *storage.Unit {
	s := storage.GroupScope(gid)
	u := &storage.Unit{Scope: s}
	for i := range 500 {
		u.Puts = append(u.Puts, storage.Record{Key: storage.Key{Scope: s, Class: storage.Public, Name: "tree/node/" + strconv.Itoa(i)}, Value: make([]byte, 170)})
	}
	return u
}

func loadFixture(b *testing.B, records int) (*memory.Backend, []byte) {
	ctx := b.Context()
	be := memory.New()
	gid := []byte("bench-group-0123456789abcdef")
	s := storage.GroupScope(gid)
	var v uint64
	for done := 0; done < records; {
		u := &storage.Unit{Scope: s, Version: v}
		for ; done < records && len(u.Puts) < storage.MaxUnitRecords; done++ {
			c, n := storage.Public, 170
			if done%10 == 0 {
				c, n = storage.KeyMaterial, 32
			}
			u.Puts = append(u.Puts, storage.Record{Key: storage.Key{Scope: s, Class: c, Name: "tree/node/" + strconv.Itoa(done)}, Value: make([]byte, n)})
		}
		var err error
		if v, err = be.Apply(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
	return be, gid
}

func BenchmarkLoad1000(b *testing.B) {
	be, gid := loadFixture(b, 1000)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		g, err := be.Load(ctx, gid)
		if err != nil || len(g.Records) != 1000 {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadAfterCommit alternates a commit and a Load, so every Load
// re-sorts the group's changed key set.
func BenchmarkLoadAfterCommit(b *testing.B) {
	be, gid := loadFixture(b, 1000)
	ctx := b.Context()
	g, err := be.Load(ctx, gid)
	if err != nil {
		b.Fatal(err)
	}
	v := g.Version
	units := [2]*storage.Unit{commitUnit(gid, 0, 2), commitUnit(gid, 0, 1)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		units[i%2].Version = v
		if v, err = be.Apply(ctx, units[i%2]); err != nil {
			b.Fatal(err)
		}
		if _, err := be.Load(ctx, gid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGet(b *testing.B) {
	be, gid := loadFixture(b, 1000)
	ctx := b.Context()
	k := storage.Key{Scope: storage.GroupScope(gid), Class: storage.Public, Name: "tree/node/17"}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := be.Get(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyParallelGroups applies commits to different groups from
// every CPU; the Backend serializes them under one lock.
func BenchmarkApplyParallelGroups(b *testing.B) {
	be := memory.New()
	var next int64
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		<-mu
		next++
		gid := []byte("group-" + strconv.FormatInt(next, 10))
		mu <- struct{}{}
		ctx := b.Context()
		var v uint64
		for e := 1; pb.Next(); e++ {
			var err error
			if v, err = be.Apply(ctx, commitUnit(gid, v, e)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
