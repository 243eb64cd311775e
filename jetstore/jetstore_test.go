package jetstore_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

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
