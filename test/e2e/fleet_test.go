package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/internal/natstest"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/natsrv"
)

// fleet is a nats-server process and mlsworker processes sharing it, as a
// deployment runs them, and the test's own connection to the server.
type fleet struct {
	t          *testing.T
	bins       map[string]string
	url        string
	root       string // hex, as MLS_ROOT_KEY
	partitions int
	workers    []*exec.Cmd
	js         jetstream.JetStream
	c          *events.Client
}

// newFleet builds the commands, starts a nats-server built from the module
// and n workers, and connects.
func newFleet(t *testing.T, ctx context.Context, n, partitions int) *fleet {
	t.Helper()
	f := &fleet{t: t, bins: build(t, "mlsworker", "mlsadmin"), root: jetstore.GenerateRootKey(), partitions: partitions}
	f.url = natstest.StartProcess(t, natstest.BuildServer(t), t.TempDir()).URL()
	for range n {
		f.start()
	}
	nc, err := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: f.url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f.js, _ = jetstream.New(nc)
	for { // until a worker made the streams
		if f.c, err = events.NewClient(ctx, f.js, events.Subjects{}, ""); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(f.c.Close)
	return f
}

// start starts one more worker and returns its index.
func (f *fleet) start() int {
	t := f.t
	i := len(f.workers)
	cmd := exec.Command(f.bins["mlsworker"], "--nats", f.url, "--partitions", fmt.Sprint(f.partitions), "--pinned-ttl", "2s", "--metrics", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "MLS_ROOT_KEY="+f.root)
	logf, err := os.Create(filepath.Join(t.TempDir(), fmt.Sprintf("worker%d.log", i)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.workers = append(f.workers, cmd)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("worker %d log tail:\n%s", i, tail(string(b), 20))
		}
	})
	return i
}

// kill kills worker i with SIGKILL.
func (f *fleet) kill(i int) {
	f.workers[i].Process.Signal(syscall.SIGKILL)
	f.workers[i].Wait()
}

// do runs a command and fails the test unless it succeeds.
func (f *fleet) do(ctx context.Context, cmd *events.Command) *events.Result {
	f.t.Helper()
	r, err := f.c.Do(ctx, cmd)
	if err != nil {
		f.t.Fatal(err)
	}
	if !r.OK {
		f.t.Fatalf("%s %s: %s %s", cmd.Kind, cmd.Member, r.Code, r.Error)
	}
	return r
}

// load opens a hosted member's jetstore (no sweeper) and loads a group, as
// mlsadmin does; the caller closes the store.
func (f *fleet) load(ctx context.Context, member string, gid []byte) (*engine.Group, *jetstore.Store) {
	f.t.Helper()
	s, err := jetstore.Open(ctx, f.js, jetstore.Options{Member: member, RootKey: []byte(mustHex(f.t, f.root)), SweepInterval: -1, Grace: 1})
	if err != nil {
		f.t.Fatal(err)
	}
	g, err := engine.LoadGroup(ctx, s, gid)
	if err != nil {
		s.Close()
		f.t.Fatalf("loading %s's %s: %v", member, gid, err)
	}
	return g, s
}

// epochOf loads a hosted member's group and returns its epoch and epoch
// authenticator; a group the member has not joined yet is epoch 0.
func (f *fleet) epochOf(ctx context.Context, member string, gid []byte) (uint64, []byte) {
	f.t.Helper()
	s, err := jetstore.Open(ctx, f.js, jetstore.Options{Member: member, RootKey: []byte(mustHex(f.t, f.root)), SweepInterval: -1, Grace: 1})
	if err != nil {
		f.t.Fatal(err)
	}
	defer s.Close()
	g, err := engine.LoadGroup(ctx, s, gid)
	if errors.Is(err, engine.ErrGroupNotFound) {
		return 0, nil
	}
	if err != nil {
		f.t.Fatalf("loading %s's %s: %v", member, gid, err)
	}
	return g.Epoch(), g.EpochAuthenticator().Bytes()
}

// admin runs mlsadmin against the fleet.
func (f *fleet) admin(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, f.bins["mlsadmin"], append(args[:1:1], append([]string{"--nats", f.url}, args[1:]...)...)...)
	cmd.Env = append(os.Environ(), "MLS_ROOT_KEY="+f.root)
	cmd.Stderr = os.Stderr
	return cmd.Output()
}
