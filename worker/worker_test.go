package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/worker"
)

var root = []byte("worker-tests-root-key-0123456789")

type harness struct {
	t   *testing.T
	ctx context.Context
	js  jetstream.JetStream
	s   events.Subjects
	evs <-chan *events.Event
	n   int
}

func start(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	cfg := worker.Config{JS: js, Partitions: 4, PinnedTTL: time.Second, Store: jetstore.Options{RootKey: root, SweepInterval: -1},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	cfg.Engine.RatchetTreeExtension = true
	w, err := worker.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done; nc.Close(); srv.Shutdown() })
	// Events, in order.
	c, err := js.OrderedConsumer(ctx, events.DefaultEventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"mls.ev.>"}})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *events.Event, 1024)
	cc, err := c.Consume(func(m jetstream.Msg) {
		e, err := events.DecodeEvent(m.Data())
		if err != nil {
			t.Errorf("event on %s: %v", m.Subject(), err)
			return
		}
		ch <- e
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return &harness{t: t, ctx: ctx, js: js, evs: ch}
}

// do sends a command and waits for its result.
func (h *harness) do(c *events.Command) *events.Result {
	h.t.Helper()
	h.n++
	c.ID = fmt.Sprintf("req-%d", h.n)
	b, err := events.Marshal(c)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.js.Publish(h.ctx, h.s.Command(c.Member, c.Group), b); err != nil {
		h.t.Fatal(err)
	}
	e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvResult && e.Result.ID == c.ID })
	return e.Result
}

// wait returns the first event that matches, failing after a timeout.
func (h *harness) wait(match func(*events.Event) bool) *events.Event {
	h.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-h.evs:
			if match(e) {
				return e
			}
		case <-timeout:
			h.t.Fatal("timed out waiting for an event")
		}
	}
}

func (h *harness) ok(c *events.Command) *events.Result {
	h.t.Helper()
	r := h.do(c)
	if !r.OK {
		h.t.Fatalf("%s: %s %s", c.Kind, r.Code, r.Error)
	}
	return r
}

func TestWorkerFirstSlice(t *testing.T) {
	h := start(t)
	gid := []byte("team")
	for _, m := range []string{"alice", "bob", "carol"} {
		h.ok(&events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	if r := h.do(&events.Command{Kind: events.CmdCreateMember, Member: "alice"}); r.Code != events.CodeExists {
		t.Fatalf("creating alice again: %+v", r)
	}
	kpb := h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "bob", Count: 1}).KeyPackages
	kpc := h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "carol", Count: 1}).KeyPackages
	h.ok(&events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: gid})
	r := h.ok(&events.Command{Kind: events.CmdAdd, Member: "alice", Group: gid, KeyPackages: append(kpb, kpc...)})
	if r.Epoch != 1 {
		t.Fatalf("add: epoch %d", r.Epoch)
	}
	for _, m := range []string{"bob", "carol"} {
		h.wait(func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == m })
	}
	h.ok(&events.Command{Kind: events.CmdSend, Member: "alice", Group: gid, Data: []byte("hello")})
	for _, m := range []string{"bob", "carol"} {
		e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == m })
		if string(e.Data) != "hello" {
			t.Fatalf("%s read %q", m, e.Data)
		}
	}
	h.ok(&events.Command{Kind: events.CmdSelfUpdate, Member: "bob", Group: gid})
	for _, m := range []string{"alice", "carol"} {
		h.wait(func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == m && e.Epoch == 2 })
	}
	h.ok(&events.Command{Kind: events.CmdSend, Member: "carol", Group: gid, Data: []byte("after the update")})
	for _, m := range []string{"alice", "bob"} {
		e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == m })
		if string(e.Data) != "after the update" {
			t.Fatalf("%s read %q", m, e.Data)
		}
	}
	// Bad input on the group's subject: rejected for every member, the
	// group goes on.
	if _, err := h.js.Publish(h.ctx, h.s.Msg(gid), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"alice", "bob", "carol"} {
		e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvRejected && e.Member == m })
		if e.Code != events.CodeMalformed {
			t.Fatalf("%s: rejected with %s", m, e.Code)
		}
	}
	// Everyone agrees.
	var auth []byte
	for _, m := range []string{"alice", "bob", "carol"} {
		s, err := jetstore.Open(h.ctx, h.js, jetstore.Options{Member: m, RootKey: root, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		g, err := engine.LoadGroup(h.ctx, s, gid)
		if err != nil {
			t.Fatal(err)
		}
		a := g.EpochAuthenticator().Bytes()
		if auth != nil && string(a) != string(auth) {
			t.Fatalf("%s disagrees", m)
		}
		auth = a
		s.Close()
	}
	if r := h.do(&events.Command{Kind: events.CmdSend, Member: "dave", Group: gid, Data: []byte("x")}); r.OK {
		t.Fatal("a command for an unknown member succeeded")
	}
}

// TestConcurrentCommits: two hosted members commit in the same epoch; the
// server lets one commit per epoch in, the other's result says it lost,
// and everyone ends in the winner's epoch.
func TestConcurrentCommits(t *testing.T) {
	h := start(t)
	gid := []byte("race")
	for _, m := range []string{"alice", "bob"} {
		h.ok(&events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	kp := h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "bob"}).KeyPackages
	h.ok(&events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: gid})
	h.ok(&events.Command{Kind: events.CmdAdd, Member: "alice", Group: gid, KeyPackages: kp})
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == "bob" })
	// Both commands are in the log before either commit.
	var ids []string
	for _, m := range []string{"alice", "bob"} {
		h.n++
		c := &events.Command{ID: fmt.Sprintf("race-%d", h.n), Kind: events.CmdSelfUpdate, Member: m, Group: gid}
		ids = append(ids, c.ID)
		b, _ := events.Marshal(c)
		if _, err := h.js.Publish(h.ctx, h.s.Command(m, gid), b); err != nil {
			t.Fatal(err)
		}
	}
	results := map[string]*events.Result{}
	for len(results) < 2 {
		e := h.wait(func(e *events.Event) bool {
			return e.Kind == events.EvResult && (e.Result.ID == ids[0] || e.Result.ID == ids[1])
		})
		results[e.Member] = e.Result
	}
	if !results["alice"].OK || results["bob"].OK || results["bob"].Code != events.CodeLost {
		t.Fatalf("alice %+v, bob %+v: want alice to win and bob to lose", results["alice"], results["bob"])
	}
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == "bob" && e.Epoch == 2 })
	h.ok(&events.Command{Kind: events.CmdSend, Member: "bob", Group: gid, Data: []byte("still here")})
	e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == "alice" })
	if string(e.Data) != "still here" {
		t.Fatalf("alice read %q", e.Data)
	}
}
