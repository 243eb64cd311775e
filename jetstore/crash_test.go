package jetstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/storage"
)

var errCrash = errors.New("injected crash")

func crashAt(at int, n *int) func(*jetstore.Options) {
	return func(o *jetstore.Options) {
		o.Grace = time.Nanosecond
		o.Hooks = &jetstore.Hooks{Step: func(string) error {
			*n++
			if at > 0 && *n >= at {
				return errCrash
			}
			return nil
		}}
	}
}

func noGrace(o *jetstore.Options) { o.Grace = time.Nanosecond }

// bigCreation is a unit creating a group too large for one atomic batch.
func bigCreation(gid []byte, id storage.UnitID) *storage.Unit {
	s := storage.GroupScope(gid)
	u := &storage.Unit{Scope: s, ID: id}
	for i := range 1500 {
		u.Puts = append(u.Puts,
			storage.Record{Key: storage.Key{Scope: s, Class: storage.KeyMaterial, Name: fmt.Sprintf("epoch/1/k/%d", i)}, Value: fmt.Appendf(nil, "secret-%d-%x", i, id)},
			storage.Record{Key: storage.Key{Scope: s, Class: storage.Public, Name: fmt.Sprintf("tree/t/%d", i)}, Value: fmt.Appendf(nil, "tile-%d", i)})
	}
	kp := storage.Key{Scope: storage.ClientScope(), Class: storage.KeyMaterial, Name: "key-package/kp"}
	u.Deletes = []storage.Key{kp}
	return u
}

func checkClean(t *testing.T, s *jetstore.Store) *jetstore.Report {
	t.Helper()
	if _, err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := s.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Orphans) > 0 || len(r.Unfinished) > 0 {
		t.Fatalf("after the sweep: orphans %v, unfinished %v", r.Orphans, r.Unfinished)
	}
	return r
}

// TestCrashLargeCreation crashes a creation that needs several batches at
// each of its steps: afterwards the group does not exist and nothing of it
// is left once swept, or it exists whole; the creation can then be done.
func TestCrashLargeCreation(t *testing.T) {
	ctx := context.Background()
	gid := []byte("big")
	kpKey := storage.Key{Scope: storage.ClientScope(), Class: storage.KeyMaterial, Name: "key-package/kp"}
	setup := func(tweak func(*jetstore.Options)) (*jetstore.Store, func() *jetstore.Store) {
		e := startServer(t)
		s := open(t, e, "alice", tweak)
		// The key package the creation uses, written by a healthy Store.
		if _, err := open(t, e, "alice", nil).Apply(ctx, &storage.Unit{Scope: storage.ClientScope(), Puts: []storage.Record{{Key: kpKey, Value: []byte("kp-secret")}}}); err != nil {
			t.Fatal(err)
		}
		return s, func() *jetstore.Store { return open(t, e, "alice", noGrace) }
	}
	n := 0
	s, _ := setup(crashAt(0, &n))
	n = 0
	if _, err := s.Apply(ctx, bigCreation(gid, storage.UnitID{1})); err != nil {
		t.Fatal(err)
	}
	steps := n
	if steps < 5 {
		t.Fatalf("a large creation took only %d steps", steps)
	}
	for at := 1; at <= steps; at++ {
		t.Run(fmt.Sprintf("step%d", at), func(t *testing.T) {
			n := 0
			s, restart := setup(crashAt(at, &n))
			_, err := s.Apply(ctx, bigCreation(gid, storage.UnitID{2}))
			s2 := restart()
			g, lerr := s2.Load(ctx, gid)
			switch {
			case errors.Is(lerr, storage.ErrGroupNotFound):
				if err == nil {
					t.Fatal("Apply succeeded, the group is missing")
				}
				checkClean(t, s2)
				if _, err := s2.Get(ctx, kpKey); err != nil {
					t.Fatalf("the key package went with a creation that did not land: %v", err)
				}
				v, err := s2.Apply(ctx, bigCreation(gid, storage.UnitID{3}))
				if err != nil {
					t.Fatalf("creating again: %v", err)
				}
				if g, err = s2.Load(ctx, gid); err != nil || g.Version != v {
					t.Fatalf("load after creating again: %v", err)
				}
			case lerr != nil:
				t.Fatal(lerr)
			}
			if len(g.Records) != 3000 {
				t.Fatalf("the group has %d records, want 3000", len(g.Records))
			}
			checkClean(t, s2)
			if _, err := s2.Get(ctx, kpKey); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("the key package outlived the creation that used it: %v", err)
			}
		})
	}
}

// TestCreationInProgress: while one writer creates a large group, another
// creator conflicts; after the grace period an abandoned creation is taken
// over.
func TestCreationInProgress(t *testing.T) {
	ctx := context.Background()
	e := startServer(t)
	n := 0
	s := open(t, e, "alice", crashAt(3, &n)) // dies after the intent and some keys
	gid := []byte("big")
	if _, err := s.Apply(ctx, bigCreation(gid, storage.UnitID{1})); err == nil {
		t.Fatal("the crash did not happen")
	}
	other := open(t, e, "alice", nil) // default grace
	if _, err := other.Apply(ctx, bigCreation(gid, storage.UnitID{2})); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("creating while another creation is in progress: %v", err)
	}
	late := open(t, e, "alice", noGrace)
	if _, err := late.Apply(ctx, bigCreation(gid, storage.UnitID{3})); err != nil {
		t.Fatalf("taking over an abandoned creation: %v", err)
	}
	checkClean(t, late)
}

// TestSweeperFinishes: a writer dies after its commit point, before erasing
// what its unit deleted; the background sweeper of another Store erases it
// within SweepInterval + Grace.
func TestSweeperFinishes(t *testing.T) {
	ctx := context.Background()
	e := startServer(t)
	n := 0
	s := open(t, e, "alice", func(o *jetstore.Options) {
		crashAt(0, &n)(o)
		o.Hooks.Step = func(step string) error {
			if step == "published" {
				return errCrash
			}
			return nil
		}
	})
	gid := []byte("g")
	sc := storage.GroupScope(gid)
	k := func(i int) storage.Key {
		return storage.Key{Scope: sc, Class: storage.KeyMaterial, Name: fmt.Sprintf("epoch/%d/secret", i)}
	}
	dead := []byte("this secret dies at epoch 2 ....")
	v, err := s.Apply(ctx, &storage.Unit{Scope: sc, Puts: []storage.Record{{Key: k(1), Value: dead}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, &storage.Unit{Scope: sc, Version: v, Puts: []storage.Record{{Key: k(2), Value: []byte("new")}},
		DeletePrefixes: []storage.KeyPrefix{{Scope: sc, Class: storage.KeyMaterial, Prefix: "epoch/1/"}}}); err != nil {
		t.Fatalf("a unit whose erasure failed after its commit point: %v", err)
	}
	if !rawHolds(t, s, dead) {
		t.Fatal("the crash did not leave the secret behind; the test proves nothing")
	}
	g, err := s.Load(ctx, gid)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.Find(storage.KeyMaterial, k(1).Name); ok {
		t.Fatal("Load returned key material a committed unit deleted")
	}
	start := time.Now()
	sweeper := open(t, e, "alice", func(o *jetstore.Options) {
		o.SweepInterval, o.Grace = 100*time.Millisecond, 200*time.Millisecond
	})
	for rawHolds(t, sweeper, dead) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the sweeper did not erase the dead secret")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("erased by the sweeper %v after it started (interval 100ms, grace 200ms)", time.Since(start).Round(time.Millisecond))
}

func rawHolds(t *testing.T, s *jetstore.Store, v []byte) bool {
	t.Helper()
	rc, err := s.RawContents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rc {
		if bytes.Contains(b, v) {
			return true
		}
	}
	return false
}

// TestRotateWrappingKey: after a rotation every live value is sealed under
// the new generation and still loads, the old generation's record is erased
// from disk, and a value sealed before cannot be opened any more, even with
// the root key.
func TestRotateWrappingKey(t *testing.T) {
	ctx := context.Background()
	e := startServer(t)
	s := open(t, e, "alice", nil)
	gid := []byte("g")
	sc := storage.GroupScope(gid)
	var u storage.Unit
	u.Scope = sc
	for i := range 10 {
		u.Puts = append(u.Puts, storage.Record{Key: storage.Key{Scope: sc, Class: storage.KeyMaterial, Name: fmt.Sprintf("k/%d", i)}, Value: fmt.Appendf(nil, "live secret number %d ......", i)})
	}
	if _, err := s.Apply(ctx, &u); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, &storage.Unit{Scope: storage.ClientScope(), Puts: []storage.Record{{Key: storage.Key{Scope: storage.ClientScope(), Class: storage.KeyMaterial, Name: "signer/x"}, Value: []byte("client secret .................")}}}); err != nil {
		t.Fatal(err)
	}
	// The sealed bytes and the wrapping key record as they are now.
	nc, _ := e.Connect()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, "KV_"+jetstore.DefaultKeyBucket)
	if err != nil {
		t.Fatal(err)
	}
	old, err := st.GetLastMsgForSubject(ctx, "$KV."+jetstore.DefaultKeyBucket+".alice.g.x67.r.k.3")
	if err != nil {
		t.Fatal(err)
	}
	oldWrap, err := st.GetLastMsgForSubject(ctx, "$KV."+jetstore.DefaultKeyBucket+".alice.w.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RotateWrappingKey(ctx); err != nil {
		t.Fatal(err)
	}
	// Other Stores of the member may still seal under the old generation
	// until their next sweep: a young generation is not retired.
	if n, err := open(t, e, "alice", nil).RetireWrappingKeys(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("retired the old generation while the new one is young: %d, %v", n, err)
	}
	n, err := s.RetireWrappingKeys(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 11 {
		t.Fatalf("re-sealed %d records, want 11", n)
	}
	fresh := open(t, e, "alice", nil)
	r, err := fresh.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Generations != 1 || r.KeyMaterial != 11 {
		t.Fatalf("after rotation: %d generations, %d records", r.Generations, r.KeyMaterial)
	}
	g, err := fresh.Load(ctx, gid)
	if err != nil || len(g.Records) != 10 {
		t.Fatalf("load after rotation: %v", err)
	}
	// The old wrapping key record is gone from disk.
	found := false
	filepath.WalkDir(e.StoreDir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			found = found || bytes.Contains(b, oldWrap.Data)
		}
		return nil
	})
	if found {
		t.Fatal("the retired wrapping key's record is still on disk")
	}
	// A copy of a value sealed before the rotation no longer opens: the raw
	// contents of a Store with the same root key do not contain it opened.
	for _, b := range mustRaw(t, fresh) {
		if bytes.Contains(b, old.Data) {
			// The old frame may linger in a block (it was superseded, not
			// erased); what matters is that it does not open.
			break
		}
	}
	if _, err := jetstore.OpenSealedForTest(fresh, old.Subject, old.Data); !errors.Is(err, jetstore.ErrCorrupt) {
		t.Fatalf("a value sealed under the retired generation opened: %v", err)
	}
}

func mustRaw(t *testing.T, s *jetstore.Store) [][]byte {
	t.Helper()
	rc, err := s.RawContents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rc
}
