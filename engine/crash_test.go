package engine_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/natsrv"
)

var errCrash = errors.New("injected crash")

// crasher stops a Store's write sequence at its at-th step and every step
// after, as if the process had died there.
type crasher struct {
	at, n int
}

func (c *crasher) step(string) error {
	c.n++
	if c.at > 0 && c.n >= c.at {
		return errCrash
	}
	return nil
}

// crashWorld is alice, bob and carol in one group on one embedded server.
type crashWorld struct {
	t    *testing.T
	mode jetstore.CommitMode
	srv  *natsrv.Embedded
	ms   map[string]*member
}

func (w *crashWorld) open(name string, c *crasher) *jetstore.Store {
	w.t.Helper()
	nc, err := w.srv.Connect()
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	o := jetstore.Options{Member: name, RootKey: jetRoot, StoreDir: w.srv.StoreDir(), SweepInterval: -1, Grace: 1, Commit: w.mode}
	if c != nil {
		o.Hooks = &jetstore.Hooks{Step: c.step}
	}
	s, err := jetstore.Open(context.Background(), js, o)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { s.Close() })
	return s
}

func newCrashWorld(t *testing.T, mode jetstore.CommitMode, crashing string, c *crasher) *crashWorld {
	w := &crashWorld{t: t, mode: mode, ms: map[string]*member{}}
	var err error
	if w.srv, err = natsrv.StartEmbedded(context.Background(), natsrv.EmbeddedOptions{Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.srv.Shutdown)
	for i, n := range []string{"alice", "bob", "carol"} {
		var cr *crasher
		if n == crashing {
			cr = c
		}
		w.ms[n] = newMemberIn(t, n, uint64(60+i), w.open(n, cr))
	}
	return w
}

// restart replaces a member's Store and handle as a restarted process would
// have them: a new connection, a sweep, a load.
func (w *crashWorld) restart(name string, groupID []byte) (found bool) {
	w.t.Helper()
	ctx := context.Background()
	s := w.open(name, nil)
	if _, err := s.Sweep(ctx); err != nil {
		w.t.Fatalf("%s: sweep after the crash: %v", name, err)
	}
	r, err := s.Check(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	if len(r.Orphans) > 0 || len(r.Unfinished) > 0 {
		w.t.Fatalf("%s after the sweep: orphans %v, unfinished %v", name, r.Orphans, r.Unfinished)
	}
	m := w.ms[name]
	m.store = s
	g, err := engine.LoadGroup(ctx, s, groupID, m.cfg)
	if errors.Is(err, engine.ErrGroupNotFound) {
		m.g = nil
		return false
	}
	if err != nil {
		w.t.Fatalf("%s loads after the crash: %v", name, err)
	}
	m.g = g
	return true
}

// roundTrip checks that the members can talk: each sends one message that
// all others read.
func (w *crashWorld) roundTrip(names ...string) {
	w.t.Helper()
	ctx := context.Background()
	for _, from := range names {
		msg, err := w.ms[from].g.Protect(ctx, []byte("hello from "+from), nil)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, to := range names {
			if to == from {
				continue
			}
			rm, err := w.ms[to].g.Process(ctx, msg)
			if err != nil || string(rm.ApplicationData) != "hello from "+from {
				w.t.Fatalf("%s reads %s: %v", to, from, err)
			}
		}
	}
}

// TestJetStoreCrashPoints stops the write sequence of a commit (self-update
// and merge), a join and an application message's decryption at each of
// their steps in turn, restarts the member (new connection, sweep, load),
// and checks that it finds the whole old or the whole new state, that no
// orphaned key material remains, and that the group goes on.
func TestJetStoreCrashPoints(t *testing.T) {
	for _, mode := range []jetstore.CommitMode{jetstore.CommitIntent, jetstore.CommitBatch} {
		t.Run(fmt.Sprintf("mode%d", mode), func(t *testing.T) { crashPoints(t, mode) })
	}
}

func crashPoints(t *testing.T, mode jetstore.CommitMode) {
	ctx := context.Background()
	gid := []byte("crash")
	type op struct {
		name, who string
		carol     bool // carol is in the group before the operation
		run       func(w *crashWorld) error
		recover   func(w *crashWorld, found bool)
	}
	var pending *engine.CommitResult
	var welcome *wire.MLSMessage
	var app *wire.MLSMessage
	ops := []op{
		{name: "commit", who: "alice", carol: true,
			run: func(w *crashWorld) error {
				res, err := w.ms["alice"].g.SelfUpdate(ctx, nil)
				if err != nil {
					return err
				}
				pending = res
				return w.ms["alice"].g.MergePendingCommit(ctx)
			},
			recover: func(w *crashWorld, found bool) {
				a := w.ms["alice"]
				before := w.ms["bob"].g.Epoch()
				switch {
				case a.g.Epoch() == before+1: // merged: the others take the commit
				case a.g.HasPendingCommit() && pending != nil:
					if err := a.g.MergePendingCommit(ctx); err != nil {
						w.t.Fatal(err)
					}
				default: // nothing landed, or a pending commit whose message was lost with the process: commit again
					if a.g.HasPendingCommit() {
						if err := a.g.ClearPendingCommit(ctx); err != nil {
							w.t.Fatal(err)
						}
					}
					res, err := a.g.SelfUpdate(ctx, nil)
					if err != nil {
						w.t.Fatal(err)
					}
					pending = res
					if err := a.g.MergePendingCommit(ctx); err != nil {
						w.t.Fatal(err)
					}
				}
				for _, n := range []string{"bob", "carol"} {
					m := w.ms[n]
					rm, err := m.g.Process(ctx, pending.Commit)
					if err != nil {
						w.t.Fatalf("%s processes the commit: %v", n, err)
					}
					if err := m.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
						w.t.Fatal(err)
					}
				}
			}},
		{name: "join", who: "carol",
			run: func(w *crashWorld) error {
				g, err := engine.JoinGroup(ctx, w.ms["carol"].store, welcome, w.ms["carol"].cfg, nil)
				w.ms["carol"].g = g
				return err
			},
			recover: func(w *crashWorld, found bool) {
				if !found {
					w.ms["carol"].join(w.t, welcome)
				}
			}},
		{name: "decrypt", who: "bob", carol: true,
			run: func(w *crashWorld) error {
				_, err := w.ms["bob"].g.Process(ctx, app)
				return err
			},
			recover: func(w *crashWorld, found bool) {
				// Old state: the message reads now; new state: its key is
				// gone and it is refused as a replay.
				rm, err := w.ms["bob"].g.Process(ctx, app)
				if err == nil && string(rm.ApplicationData) != "crash me" {
					w.t.Fatal("wrong plaintext")
				}
				if err != nil && !errors.Is(err, group.ErrReplay) {
					w.t.Fatalf("bob re-reads the message: %v", err)
				}
			}},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			setup := func(c *crasher) *crashWorld {
				w := newCrashWorld(t, mode, o.who, c)
				a := w.ms["alice"]
				a.create(t, gid)
				kps := []*wire.KeyPackage{w.ms["bob"].keyPackage(t, false)}
				if o.carol {
					kps = append(kps, w.ms["carol"].keyPackage(t, false))
				}
				res, err := a.g.AddMembers(ctx, kps)
				if err != nil {
					t.Fatal(err)
				}
				if err := a.g.MergePendingCommit(ctx); err != nil {
					t.Fatal(err)
				}
				w.ms["bob"].join(t, res.Welcome)
				if o.carol {
					w.ms["carol"].join(t, res.Welcome)
				} else {
					kp := w.ms["carol"].keyPackage(t, false)
					res, err := a.g.AddMembers(ctx, []*wire.KeyPackage{kp})
					if err != nil {
						t.Fatal(err)
					}
					land(t, a, res, w.ms["bob"])
					welcome = res.Welcome
				}
				if app, err = a.g.Protect(ctx, []byte("crash me"), nil); err != nil {
					t.Fatal(err)
				}
				c.n = 0 // count only the operation's steps
				pending = nil
				return w
			}
			// A dry run counts the steps.
			dry := &crasher{}
			w := setup(dry)
			if err := o.run(w); err != nil {
				t.Fatal(err)
			}
			steps := dry.n
			if steps < 2 {
				t.Fatalf("only %d steps", steps)
			}
			for at := 1; at <= steps; at++ {
				t.Run(fmt.Sprintf("step%d", at), func(t *testing.T) {
					c := &crasher{}
					w := setup(c)
					c.at = at
					// After its commit point a unit reports success even
					// if what follows (erasure, the snapshot) did not
					// happen: the process is treated as dead anyway.
					_ = o.run(w)
					if c.n < at {
						t.Fatalf("the operation never reached step %d", at)
					}
					found := w.restart(o.who, gid)
					if !found && o.name != "join" {
						t.Fatalf("%s lost the group", o.who)
					}
					o.recover(w, found)
					w.restart(o.who, gid)
					mustAgree(t, w.ms["alice"], w.ms["bob"], w.ms["carol"])
					w.roundTrip("alice", "bob", "carol")
				})
			}
			t.Logf("%s: crashed at each of %d steps", o.name, steps)
		})
	}
}
