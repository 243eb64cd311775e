package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/storage/memory"
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

func start(t *testing.T) *harness { t.Helper(); return startWith(t, nil) }

// startWith starts a worker whose configuration tune adjusts.
func startWith(t *testing.T, tune func(*worker.Config)) *harness {
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
	if tune != nil {
		tune(&cfg)
	}
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
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the worker did not stop")
		}
		nc.Close()
		srv.Shutdown()
	})
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

// waitAll waits until each matcher matched an event, in any order.
func (h *harness) waitAll(matches ...func(*events.Event) bool) {
	h.t.Helper()
	left := append([]func(*events.Event) bool(nil), matches...)
	for len(left) > 0 {
		e := h.wait(func(e *events.Event) bool {
			for _, m := range left {
				if m(e) {
					return true
				}
			}
			return false
		})
		for i, m := range left {
			if m(e) {
				left = append(left[:i], left[i+1:]...)
				break
			}
		}
	}
}

// newGroup makes hosted members, the first of which creates the group and
// adds the second.
func (h *harness) newGroup(gid []byte, members ...string) {
	h.t.Helper()
	for _, m := range members {
		h.ok(&events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	kp := h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: members[1]}).KeyPackages
	h.ok(&events.Command{Kind: events.CmdCreateGroup, Member: members[0], Group: gid})
	h.ok(&events.Command{Kind: events.CmdAdd, Member: members[0], Group: gid, KeyPackages: kp})
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == members[1] })
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
	// Both commands are in the log before either commit: published without
	// waiting in between, they leave in one write to the server, before
	// the worker can have applied the first.
	var ids []string
	for _, m := range []string{"alice", "bob"} {
		h.n++
		c := &events.Command{ID: fmt.Sprintf("race-%d", h.n), Kind: events.CmdSelfUpdate, Member: m, Group: gid}
		ids = append(ids, c.ID)
		b, _ := events.Marshal(c)
		if _, err := h.js.PublishAsync(h.s.Command(m, gid), b); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-h.js.PublishAsyncComplete():
	case <-time.After(10 * time.Second):
		t.Fatal("the commands were not acknowledged")
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

// state is a member's stored group, for comparing before and after, once
// it has settled: a worker stores a batch's changes a few milliseconds
// after it published their events.
func (h *harness) state(member string, gid []byte) string {
	h.t.Helper()
	prev := h.readState(member, gid)
	for {
		time.Sleep(30 * time.Millisecond)
		cur := h.readState(member, gid)
		if cur == prev {
			return cur
		}
		prev = cur
	}
}

func (h *harness) readState(member string, gid []byte) string {
	h.t.Helper()
	s, err := jetstore.Open(h.ctx, h.js, jetstore.Options{Member: member, RootKey: root, SweepInterval: -1})
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	g, err := s.Load(h.ctx, gid)
	if err != nil {
		h.t.Fatal(err)
	}
	out := fmt.Sprintf("version %d\n", g.Version)
	for _, r := range g.Records {
		out += fmt.Sprintf("%v %x\n", r.Key, r.Value)
	}
	return out
}

// TestBadInput: bad input on every subject gets a rejected event or a
// clear command error, and leaves the members' stored state as it was.
func TestBadInput(t *testing.T) {
	h := start(t)
	gid, other := []byte("good"), []byte("other")
	for _, m := range []string{"alice", "bob", "carol"} {
		h.ok(&events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	kps := h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "bob"}).KeyPackages
	kps = append(kps, h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "carol"}).KeyPackages...)
	h.ok(&events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: gid})
	h.ok(&events.Command{Kind: events.CmdAdd, Member: "alice", Group: gid, KeyPackages: kps})
	for _, m := range []string{"bob", "carol"} {
		h.wait(func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == m })
	}
	h.ok(&events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: other})
	// A real message of the group, to replay, and one of another group.
	log, err := h.js.OrderedConsumer(h.ctx, events.DefaultLogStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"mls.p.*." + events.GroupToken(gid) + ".msg", "mls.p.*." + events.GroupToken(other) + ".msg"}})
	if err != nil {
		t.Fatal(err)
	}
	h.ok(&events.Command{Kind: events.CmdSend, Member: "alice", Group: gid, Data: []byte("once")})
	h.waitAll(func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == "bob" },
		func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == "carol" })
	h.ok(&events.Command{Kind: events.CmdSend, Member: "alice", Group: other, Data: []byte("elsewhere")})
	var sent, foreign []byte
	for sent == nil || foreign == nil {
		m, err := log.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if in, _ := h.s.ParseInput(m.Subject()); string(in.GroupID) == string(gid) {
			sent = m.Data()
		} else {
			foreign = m.Data()
		}
	}
	// Carol is removed: her commands are refused from now on.
	h.ok(&events.Command{Kind: events.CmdRemove, Member: "alice", Group: gid, Leaves: []uint32{2}})
	h.waitAll(func(e *events.Event) bool { return e.Kind == events.EvGroupDeleted && e.Member == "carol" },
		func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == "bob" && e.Epoch == 2 })

	members := []string{"alice", "bob"}
	before := map[string]string{}
	for _, m := range members {
		before[m] = h.state(m, gid)
	}
	rejected := func(member string, code events.Code) {
		t.Helper()
		e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvRejected && e.Member == member })
		if e.Code != code {
			t.Fatalf("%s: rejected with %s (%s), want %s", member, e.Code, e.Detail, code)
		}
	}
	pub := func(subject string, data []byte) {
		t.Helper()
		if _, err := h.js.Publish(h.ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	// Garbage on the group's subject and on its epoch's.
	pub(h.s.Msg(gid), []byte("garbage"))
	h.waitAll(func(e *events.Event) bool {
		return e.Kind == events.EvRejected && e.Member == "alice" && e.Code == events.CodeMalformed
	},
		func(e *events.Event) bool {
			return e.Kind == events.EvRejected && e.Member == "bob" && e.Code == events.CodeMalformed
		})
	pub(h.s.Epoch(gid, 2), []byte{0, 1, 2})
	h.waitAll(func(e *events.Event) bool {
		return e.Kind == events.EvRejected && e.Member == "alice" && e.Code == events.CodeMalformed
	},
		func(e *events.Event) bool {
			return e.Kind == events.EvRejected && e.Member == "bob" && e.Code == events.CodeMalformed
		})
	// A message of another group.
	pub(h.s.Msg(gid), foreign)
	h.waitAll(func(e *events.Event) bool {
		return e.Kind == events.EvRejected && e.Member == "alice" && e.Code == events.CodeWrongGroup
	},
		func(e *events.Event) bool {
			return e.Kind == events.EvRejected && e.Member == "bob" && e.Code == events.CodeWrongGroup
		})
	// A replay (bob read it in epoch 1; it is now also from a past epoch).
	pub(h.s.Msg(gid), sent)
	old := func(e *events.Event) bool { return e.Code == events.CodeReplay || e.Code == events.CodeWrongEpoch }
	h.waitAll(func(e *events.Event) bool { return e.Kind == events.EvRejected && e.Member == "alice" && old(e) },
		func(e *events.Event) bool { return e.Kind == events.EvRejected && e.Member == "bob" && old(e) })
	// A Welcome that is not one, for bob.
	pub(h.s.Welcome(gid, "bob"), []byte("not a welcome"))
	rejected("bob", events.CodeMalformed)
	// A command that does not decode, one for an unknown member, one from
	// the removed member, one for another member's subject.
	pub(h.s.Command("bob", gid), []byte{0xc1})
	rejected("bob", events.CodeMalformed)
	if r := h.do(&events.Command{Kind: events.CmdSend, Member: "mallory", Group: gid, Data: []byte("x")}); r.OK || r.Code != events.CodeNotMember {
		t.Fatalf("unknown member: %+v", r)
	}
	if r := h.do(&events.Command{Kind: events.CmdSend, Member: "carol", Group: gid, Data: []byte("x")}); r.OK {
		t.Fatalf("the removed member sent: %+v", r)
	}
	// An oversized payload never enters the log.
	if _, err := h.js.Publish(h.ctx, h.s.Msg(gid), make([]byte, events.MaxPayload+1)); err == nil {
		t.Fatal("an oversized payload was accepted")
	}
	for _, m := range members {
		if after := h.state(m, gid); after != before[m] {
			t.Errorf("%s's stored state changed:\nbefore:\n%s\nafter:\n%s", m, before[m], after)
		}
	}
	// And the group goes on.
	h.ok(&events.Command{Kind: events.CmdSend, Member: "bob", Group: gid, Data: []byte("fine")})
	if e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == "alice" }); string(e.Data) != "fine" {
		t.Fatalf("alice read %q", e.Data)
	}
}

// TestFutureEpoch: a message of an epoch whose commit comes after it in
// the log is set aside, read once the commit arrived, and delivered once.
func TestFutureEpoch(t *testing.T) {
	h := start(t)
	gid := []byte("future")
	for _, m := range []string{"alice", "bob"} {
		h.ok(&events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	// Carol is outside: an engine member of this test.
	suite, _ := ciphersuite.Lookup(engine.DefaultSuite)
	key, _ := suite.GenerateSigningKey(nil)
	cfg := &engine.Config{}
	cfg.RatchetTreeExtension = true
	store := memory.New()
	kp, err := engine.NewKeyPackage(h.ctx, store, key, cfg, wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("carol")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kpb, _ := wire.Marshal(kp)
	kps := append(h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "bob"}).KeyPackages, kpb)
	h.ok(&events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: gid})
	log, err := h.js.OrderedConsumer(h.ctx, events.DefaultLogStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"mls.p.*." + events.GroupToken(gid) + ".welcome"}})
	if err != nil {
		t.Fatal(err)
	}
	h.ok(&events.Command{Kind: events.CmdAdd, Member: "alice", Group: gid, KeyPackages: kps})
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == "bob" })
	wm, err := log.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	welcome, _ := wire.Unmarshal[wire.MLSMessage](wm.Data())
	carol, err := engine.JoinGroup(h.ctx, store, welcome, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Carol commits and writes in the new epoch; the message goes out
	// first.
	res, err := carol.SelfUpdate(h.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.MergePendingCommit(h.ctx); err != nil {
		t.Fatal(err)
	}
	msg, err := carol.Protect(h.ctx, []byte("from the future"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.Publish(h.ctx, h.s.Msg(gid), msg.Bytes()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := h.js.Publish(h.ctx, h.s.Epoch(gid, 1), res.Commit.Bytes()); err != nil {
		t.Fatal(err)
	}
	read := map[string]int{}
	deadline := time.After(15 * time.Second)
	for len(read) < 2 {
		select {
		case e := <-h.evs:
			switch {
			case e.Kind == events.EvRejected:
				t.Fatalf("%s rejected the message: %s %s", e.Member, e.Code, e.Detail)
			case e.Kind == events.EvApplication:
				if string(e.Data) != "from the future" {
					t.Fatalf("%s read %q", e.Member, e.Data)
				}
				read[e.Member]++
			}
		case <-deadline:
			t.Fatalf("read by %v only", read)
		}
	}
	for m, n := range read {
		if n != 1 {
			t.Errorf("%s read it %d times", m, n)
		}
	}
	// Nothing is left parked, not even the index of what was.
	kv, err := h.js.KeyValue(h.ctx, worker.DefaultParkBucket)
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.After(5 * time.Second)
	for {
		keys, err := kv.Keys(h.ctx)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-deadline:
			t.Fatalf("still parked: %v", keys)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestMoreCommands: propose, commit, export, leave and delete-group.
func TestMoreCommands(t *testing.T) {
	h := start(t)
	gid := []byte("more")
	for _, m := range []string{"alice", "bob"} {
		h.ok(&events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	kp := h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "bob"}).KeyPackages
	h.ok(&events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: gid})
	h.ok(&events.Command{Kind: events.CmdAdd, Member: "alice", Group: gid, KeyPackages: kp})
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == "bob" })
	// Bob proposes an update; alice receives it and commits it.
	h.ok(&events.Command{Kind: events.CmdPropose, Member: "bob", Group: gid, Proposal: &events.Proposal{Kind: events.ProposeUpdate}})
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvProposal && e.Member == "alice" })
	if r := h.ok(&events.Command{Kind: events.CmdCommit, Member: "alice", Group: gid}); r.Epoch != 2 {
		t.Fatalf("commit: epoch %d", r.Epoch)
	}
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == "bob" && e.Epoch == 2 })
	// Both export the same secret.
	ea := h.ok(&events.Command{Kind: events.CmdExport, Member: "alice", Group: gid, Label: "test", Length: 32}).Secret
	eb := h.ok(&events.Command{Kind: events.CmdExport, Member: "bob", Group: gid, Label: "test", Length: 32}).Secret
	if len(ea) != 32 || string(ea) != string(eb) {
		t.Fatal("exported secrets differ")
	}
	// Bob leaves: his proposal, committed by alice, removes him.
	h.ok(&events.Command{Kind: events.CmdLeave, Member: "bob", Group: gid})
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvProposal && e.Member == "alice" })
	h.ok(&events.Command{Kind: events.CmdCommit, Member: "alice", Group: gid})
	h.wait(func(e *events.Event) bool { return e.Kind == events.EvGroupDeleted && e.Member == "bob" })
	if r := h.do(&events.Command{Kind: events.CmdSend, Member: "bob", Group: gid, Data: []byte("x")}); r.OK {
		t.Fatal("bob sends after leaving")
	}
	// Alice deletes the group.
	h.ok(&events.Command{Kind: events.CmdDeleteGroup, Member: "alice", Group: gid})
	if r := h.do(&events.Command{Kind: events.CmdSend, Member: "alice", Group: gid, Data: []byte("x")}); r.OK {
		t.Fatal("alice sends to a deleted group")
	}
	if r := h.do(&events.Command{Kind: events.CmdPropose, Member: "alice", Group: gid, Proposal: &events.Proposal{Kind: events.ProposeGCE}}); r.OK {
		t.Fatal("alice proposes in a deleted group")
	}
}
