package engine_test

import (
	"context"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/internal/natstest"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/storage"
)

// The engine's tests that matter most for persistence (the scenario, forward
// secrecy, bad input) also run with jetstore on an embedded file-store
// server: every member is a jetstore member of shared buckets, and its
// Store is reopened on a new connection (no cache, no state in the process)
// at every reload, or before every storage call.

var jetRoot = []byte("engine-tests-root-key-0123456789")

// jetEnv is one server shared by a test's members: embedded, or a real
// nats-server process.
type jetEnv struct {
	connect  func() (*nats.Conn, error)
	storeDir string
}

func newJetEnv(t testing.TB) *jetEnv {
	t.Helper()
	srv, err := natsrv.StartEmbedded(context.Background(), natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return &jetEnv{connect: func() (*nats.Conn, error) { return srv.Connect() }, storeDir: srv.StoreDir()}
}

// newJetEnvProcess starts a nats-server process built from the module, on
// 127.0.0.1, stopped when the test ends.
func newJetEnvProcess(t testing.TB) *jetEnv {
	t.Helper()
	p := natstest.StartProcess(t, natstest.BuildServer(t), t.TempDir())
	return &jetEnv{connect: func() (*nats.Conn, error) {
		return natsrv.Connect(context.Background(), natsrv.ConnectOptions{URL: p.URL(), Name: "engine-test"})
	}, storeDir: p.StoreDir()}
}

// store returns a member's backend. With perCall, every storage call opens
// a new connection and Store; otherwise renew does.
func (e *jetEnv) store(t testing.TB, member string, perCall bool) *renewingStore {
	r := &renewingStore{t: t, e: e, member: member, perCall: perCall}
	r.renew()
	t.Cleanup(r.close)
	return r
}

// renewingStore is a jetstore.Store that is reopened on a fresh connection
// on demand.
type renewingStore struct {
	t       testing.TB
	e       *jetEnv
	member  string
	perCall bool

	mu  sync.Mutex
	nc  *nats.Conn
	cur *jetstore.Store
}

func (r *renewingStore) renew() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
	nc, err := r.e.connect()
	if err != nil {
		r.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		r.t.Fatal(err)
	}
	s, err := jetstore.Open(context.Background(), js, jetstore.Options{
		Member: r.member, RootKey: jetRoot, StoreDir: r.e.storeDir, SweepInterval: -1})
	if err != nil {
		r.t.Fatal(err)
	}
	r.nc, r.cur = nc, s
}

func (r *renewingStore) closeLocked() {
	if r.cur != nil {
		r.cur.Close()
		r.nc.Close()
		r.cur, r.nc = nil, nil
	}
}

func (r *renewingStore) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
}

func (r *renewingStore) get() *jetstore.Store {
	if r.perCall {
		r.renew()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *renewingStore) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	return r.get().Apply(ctx, u)
}
func (r *renewingStore) Load(ctx context.Context, id []byte) (*storage.GroupRecords, error) {
	return r.get().Load(ctx, id)
}
func (r *renewingStore) Version(ctx context.Context, id []byte) (uint64, error) {
	return r.get().Version(ctx, id)
}
func (r *renewingStore) Get(ctx context.Context, k storage.Key) ([]byte, error) {
	return r.get().Get(ctx, k)
}
func (r *renewingStore) GetMany(ctx context.Context, ks []storage.Key) ([]storage.Record, error) {
	return r.get().GetMany(ctx, ks)
}
func (r *renewingStore) List(ctx context.Context, s storage.Scope, c storage.Class, p string) ([]storage.Record, error) {
	return r.get().List(ctx, s, c, p)
}
func (r *renewingStore) RawContents(ctx context.Context) ([][]byte, error) {
	return r.get().RawContents(ctx)
}
