package jetstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/internal/natstest"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/storagetest"
)

var testRoot = []byte("0123456789abcdef0123456789abcdef")

// server starts an embedded file-store server in a temporary directory.
func startServer(t testing.TB) *natsrv.Embedded {
	t.Helper()
	e, err := natsrv.StartEmbedded(context.Background(), natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e
}

// open connects a new client to e and opens a Store for member.
func open(t testing.TB, e *natsrv.Embedded, member string, tweak func(*jetstore.Options)) *jetstore.Store {
	t.Helper()
	nc, err := e.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	o := jetstore.Options{Member: member, RootKey: testRoot, StoreDir: e.StoreDir(), SweepInterval: -1}
	if tweak != nil {
		tweak(&o)
	}
	s, err := jetstore.Open(context.Background(), js, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return open(t, startServer(t), "alice", nil)
	})
}

// TestServerDown: with the server gone, reads fail with an error (never
// "not found", which a caller would act on) and a write fails without
// claiming success.
func TestServerDown(t *testing.T) {
	e := startServer(t)
	s := open(t, e, "alice", nil)
	ctx := context.Background()
	gid := []byte("g")
	u := &storage.Unit{Scope: storage.GroupScope(gid), Puts: []storage.Record{{Key: storage.Key{Scope: storage.GroupScope(gid), Class: storage.KeyMaterial, Name: "k"}, Value: []byte("v")}}}
	if _, err := s.Apply(ctx, u); err != nil {
		t.Fatal(err)
	}
	e.Shutdown()
	tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := s.Load(tctx, gid); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Load with the server down: %v", err)
	}
	if _, err := s.Load(tctx, []byte("other")); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Load of a missing group with the server down: %v", err)
	}
	if _, err := s.Version(tctx, gid); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Version with the server down: %v", err)
	}
	if _, err := s.List(tctx, storage.ClientScope(), storage.Public, ""); err == nil {
		t.Errorf("List with the server down: %v", err)
	}
	u2 := &storage.Unit{Scope: storage.GroupScope(gid), Version: 1}
	if _, err := s.Apply(tctx, u2); err == nil {
		t.Errorf("Apply with the server down succeeded")
	}
}

// TestConformanceRealServer runs the suite against a nats-server process
// built from the module (CI starts none), reading its store directory.
func TestConformanceRealServer(t *testing.T) {
	p := natstest.StartProcess(t, natstest.BuildServer(t), t.TempDir())
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		nc, err := natsrv.Connect(context.Background(), natsrv.ConnectOptions{URL: p.URL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		// Each subtest is its own member: the suite wants an empty backend.
		member := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
		member = member[len(member)-min(len(member), 60):]
		s, err := jetstore.Open(context.Background(), js, jetstore.Options{Member: member, RootKey: testRoot, StoreDir: p.StoreDir(), SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestConformanceBatchMode runs the suite with units committed as atomic
// batches (the mode CommitAuto picks for replicated or memory buckets).
func TestConformanceBatchMode(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return open(t, startServer(t), "alice", func(o *jetstore.Options) { o.Commit = jetstore.CommitBatch })
	})
}
