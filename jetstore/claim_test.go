package jetstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/storage"
)

// TestLateClaimedFinisher: in CommitIntent mode a unit's public records are
// written one by one under a claim of the scope's marker. A finisher that
// stalls after its claim, while another writer finishes its journal and
// commits a newer unit over the same record, writes nothing when it wakes:
// the newer record stays, and the stalled Apply still succeeds.
func TestLateClaimedFinisher(t *testing.T) {
	ctx := context.Background()
	e := startServer(t)
	gid := []byte("late")
	sc := storage.GroupScope(gid)
	rec := func(v string) storage.Record {
		return storage.Record{Key: storage.Key{Scope: sc, Class: storage.Public, Name: "r"}, Value: []byte(v)}
	}
	claimed, resume := make(chan struct{}), make(chan struct{})
	stall := true
	a := open(t, e, "alice", func(o *jetstore.Options) {
		o.Commit = jetstore.CommitIntent
		o.Hooks = &jetstore.Hooks{Step: func(step string) error {
			if step == "claimed" && stall {
				stall = false
				close(claimed)
				<-resume
			}
			return nil
		}}
	})
	b := open(t, e, "alice", func(o *jetstore.Options) { o.Commit = jetstore.CommitIntent })
	v1, err := b.Apply(ctx, &storage.Unit{Scope: sc, Puts: []storage.Record{rec("v1")}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := a.Apply(ctx, &storage.Unit{Scope: sc, Version: v1, Puts: []storage.Record{rec("v2")}})
		done <- err
	}()
	select {
	case <-claimed:
	case <-time.After(10 * time.Second):
		t.Fatal("the first finisher never claimed the marker")
	}
	// Another writer finishes v2's journal itself, then writes v3.
	g, err := b.Load(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(ctx, &storage.Unit{Scope: sc, Version: g.Version, Puts: []storage.Record{rec("v3")}}); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatalf("the stalled Apply: %v", err)
	}
	for _, s := range []*jetstore.Store{open(t, e, "alice", nil), b} {
		g, err := s.Load(ctx, gid)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Records) != 1 || string(g.Records[0].Value) != "v3" {
			t.Fatalf("after the late finisher woke: %v", g.Records)
		}
		l, err := s.List(ctx, sc, storage.Public, "")
		if err != nil || len(l) != 1 || string(l[0].Value) != "v3" {
			t.Fatalf("List: %v %v", l, err)
		}
	}
	// The snapshot itself holds v3: a reader of the raw record agrees.
	if v, err := b.Get(ctx, rec("").Key); err != nil || string(v) != "v3" {
		t.Fatalf("Get: %q %v", v, err)
	}
}

// TestAbandonRace: a writer in CommitIntent mode stalls between writing its
// key material and committing, long enough for another Store to roll its
// unit back. Whichever moves the head first wins: if the rollback does, the
// writer's commit fails and its records are erased; if the writer commits
// first, the rollback undoes nothing. Either way the group loads whole.
func TestAbandonRace(t *testing.T) {
	for _, writerFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "rollback first", true: "commit first"}[writerFirst], func(t *testing.T) {
			ctx := context.Background()
			e := startServer(t)
			gid := []byte("race")
			sc := storage.GroupScope(gid)
			put := func(name, v string) storage.Record {
				return storage.Record{Key: storage.Key{Scope: sc, Class: storage.KeyMaterial, Name: name}, Value: []byte(v)}
			}
			pub := func(v string) storage.Record {
				return storage.Record{Key: storage.Key{Scope: sc, Class: storage.Public, Name: "p"}, Value: []byte(v)}
			}
			atCommit, resume := make(chan struct{}), make(chan struct{})
			stall := true
			w := open(t, e, "alice", func(o *jetstore.Options) {
				o.Commit = jetstore.CommitIntent
				o.Hooks = &jetstore.Hooks{Step: func(step string) error {
					if step == "commit" && stall {
						stall = false
						close(atCommit)
						<-resume
					}
					return nil
				}}
			})
			other := open(t, e, "alice", func(o *jetstore.Options) { o.Commit = jetstore.CommitIntent; o.Grace = time.Nanosecond })
			v1, err := other.Apply(ctx, &storage.Unit{Scope: sc, Puts: []storage.Record{put("k/1", "one"), pub("one")}})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := w.Apply(ctx, &storage.Unit{Scope: sc, Version: v1, Puts: []storage.Record{put("k/2", "two"), pub("two")},
					Deletes: []storage.Key{put("k/1", "").Key}})
				done <- err
			}()
			<-atCommit
			if writerFirst {
				close(resume)
				if err := <-done; err != nil {
					t.Fatalf("the writer's commit: %v", err)
				}
			}
			// Load with no grace rolls back whatever is under way.
			if _, err := other.Load(ctx, gid); err != nil {
				t.Fatal(err)
			}
			if !writerFirst {
				close(resume)
				if err := <-done; err == nil {
					t.Fatal("the writer committed a unit that was rolled back")
				}
			}
			fresh := open(t, e, "alice", noGrace)
			g, err := fresh.Load(ctx, gid)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"k/1": "one", "p": "one"}
			if writerFirst {
				want = map[string]string{"k/2": "two", "p": "two"}
			}
			got := map[string]string{}
			for _, r := range g.Records {
				got[r.Key.Name] = string(r.Value)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("loaded %v, want %v", got, want)
			}
			if _, err := fresh.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			r, err := fresh.Check(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Orphans) > 0 || len(r.Unfinished) > 0 {
				t.Fatalf("orphans %v, unfinished %v", r.Orphans, r.Unfinished)
			}
		})
	}
}
