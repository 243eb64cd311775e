package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// outsider is an MLS client of the test's own, outside the workers: an
// engine member whose state is in this process, that reads the group's log
// like any other implementation would and publishes to its subjects.
type outsider struct {
	t    *testing.T
	f    *fleet
	gid  []byte
	g    *engine.Group
	log  <-chan events.LogMsg
	own  map[string]bool // bytes of the messages it published
	read map[string]int  // plaintexts it read
}

// follow processes the group's log until done says so.
func (o *outsider) follow(ctx context.Context, what string, done func() bool) {
	o.t.Helper()
	timeout := time.After(time.Minute)
	for !done() {
		var m events.LogMsg
		select {
		case m = <-o.log:
		case <-timeout:
			o.t.Fatalf("outsider: %s: nothing more in the log", what)
		}
		if m.Kind != events.InputMsg && m.Kind != events.InputCommit {
			continue
		}
		if o.own[string(m.Data)] {
			if m.Kind == events.InputCommit {
				if err := o.g.MergePendingCommit(ctx); err != nil {
					o.t.Fatalf("outsider merges its commit: %v", err)
				}
			}
			continue
		}
		if m.Kind == events.InputCommit && o.g.HasPendingCommit() {
			// Another commit won this epoch.
			if err := o.g.ClearPendingCommit(ctx); err != nil {
				o.t.Fatal(err)
			}
		}
		rm, err := o.g.ProcessBytes(ctx, m.Data)
		if err != nil {
			o.t.Fatalf("outsider processes input kind %d from %q at %d: %v", m.Kind, m.From, m.Seq, err)
		}
		switch {
		case rm.Commit != nil:
			if err := o.g.MergeStagedCommit(ctx, rm.Commit); err != nil {
				o.t.Fatal(err)
			}
		case rm.Proposal == nil:
			o.read[string(rm.ApplicationData)]++
		}
	}
}

// TestScenario: three workers share a nats-server process and host three
// members of a group that also has the test's own outside client. Over
// several epochs everyone sends, hosted members and the outsider commit,
// often two at once for the same epoch: exactly one commit wins each time
// (the loser's result or publish says it lost), every member agrees on the
// epoch authenticator in every epoch, every application message is
// delivered exactly once to every other member, and mlsadmin inspect shows
// the members.
func TestScenario(t *testing.T) {
	rounds := 8
	if testing.Short() {
		rounds = 4
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := newFleet(t, ctx, 3, 4)
	gid := []byte("scenario")
	hosted := []string{"h0", "h1", "h2"}
	for _, m := range hosted {
		f.do(ctx, &events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	// Every application event, counted.
	type key struct{ member, data string }
	var mu sync.Mutex
	got := map[key]int{}
	evs, stop := f.c.Subscribe(func(e *events.Event) bool { return e.Kind == events.EvApplication }, 1<<14)
	defer stop()
	go func() {
		for e := range evs {
			mu.Lock()
			got[key{e.Member, string(e.Data)}]++
			mu.Unlock()
		}
	}()

	suite, _ := ciphersuite.Lookup(engine.DefaultSuite)
	sk, err := suite.GenerateSigningKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ocfg := &engine.Config{}
	ocfg.MaxPastEpochs = 2
	ocfg.RatchetTreeExtension = true
	ostore := memory.New()
	okp, err := engine.NewKeyPackage(ctx, ostore, sk, ocfg, wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("outsider")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	okpb, _ := wire.Marshal(okp)
	logc, stopLog, err := f.c.Log(ctx, gid, "")
	if err != nil {
		t.Fatal(err)
	}
	defer stopLog()
	o := &outsider{t: t, f: f, gid: gid, log: logc, own: map[string]bool{}, read: map[string]int{}}

	f.do(ctx, &events.Command{Kind: events.CmdCreateGroup, Member: "h0", Group: gid})
	var kps [][]byte
	for _, m := range hosted[1:] {
		kps = append(kps, f.do(ctx, &events.Command{Kind: events.CmdKeyPackages, Member: m}).KeyPackages...)
	}
	f.do(ctx, &events.Command{Kind: events.CmdAdd, Member: "h0", Group: gid, KeyPackages: append(kps, okpb)})
	for o.g == nil {
		select {
		case m := <-logc:
			if m.Kind == events.InputWelcome && m.Member == "" {
				w, err := wire.Unmarshal[wire.MLSMessage](m.Data)
				if err != nil {
					t.Fatal(err)
				}
				if o.g, err = engine.JoinGroup(ctx, ostore, w, ocfg, nil); err != nil {
					t.Fatalf("outsider joins: %v", err)
				}
			}
		case <-time.After(time.Minute):
			t.Fatal("no Welcome for the outsider")
		}
	}

	// agree waits for every hosted member to reach the outsider's epoch and
	// compares their epoch authenticators with its own.
	agree := func() {
		t.Helper()
		want := o.g.EpochAuthenticator().Bytes()
		for _, m := range hosted {
			deadline := time.Now().Add(30 * time.Second)
			for {
				e, a := f.epochOf(ctx, m, gid)
				if a != nil && e == o.g.Epoch() {
					if !bytes.Equal(a, want) {
						t.Fatalf("%s disagrees with the outsider in epoch %d", m, e)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s is in epoch %d, the outsider in %d", m, e, o.g.Epoch())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	agree()

	var want []key // deliveries to hosted members
	wins := map[string]int{}
	for r := range rounds {
		// Everyone sends two messages.
		var sentByHosted int
		for _, m := range hosted {
			for i := range 2 {
				text := fmt.Sprintf("r%d %s %d", r, m, i)
				f.do(ctx, &events.Command{Kind: events.CmdSend, Member: m, Group: gid, Data: []byte(text)})
				sentByHosted++
				for _, to := range hosted {
					if to != m {
						want = append(want, key{to, text})
					}
				}
			}
		}
		for i := range 2 {
			text := fmt.Sprintf("r%d outsider %d", r, i)
			msg, err := o.g.Protect(ctx, []byte(text), nil)
			if err != nil {
				t.Fatal(err)
			}
			o.own[string(msg.Bytes())] = true
			if err := f.c.Publish(ctx, gid, msg.Bytes()); err != nil {
				t.Fatal(err)
			}
			for _, to := range hosted {
				want = append(want, key{to, text})
			}
		}
		readBefore := len(o.read)
		o.follow(ctx, "this round's messages", func() bool { return len(o.read) == readBefore+sentByHosted })

		// Two commits for the same epoch at once: two hosted members, or
		// a hosted member and the outsider.
		epoch := o.g.Epoch()
		a, b := hosted[r%3], hosted[(r+1)%3]
		var wg sync.WaitGroup
		results := make([]*events.Result, 2)
		var outsiderWon bool
		var outsiderErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			results[0], _ = f.c.Do(ctx, &events.Command{Kind: events.CmdSelfUpdate, Member: a, Group: gid})
		}()
		go func() {
			defer wg.Done()
			if r%2 == 0 {
				results[1], _ = f.c.Do(ctx, &events.Command{Kind: events.CmdSelfUpdate, Member: b, Group: gid})
				return
			}
			res, err := o.g.SelfUpdate(ctx, nil)
			if err != nil {
				outsiderErr = err
				return
			}
			m := nats.NewMsg(events.Subjects{}.Epoch(gid, epoch))
			m.Data = res.Commit.Bytes()
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
			o.own[string(m.Data)] = true
			_, err = f.js.PublishMsg(ctx, m)
			var apiErr *jetstream.APIError
			switch {
			case err == nil:
				outsiderWon = true
			case errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence:
			default:
				outsiderErr = err
			}
		}()
		wg.Wait()
		if outsiderErr != nil {
			t.Fatalf("outsider's commit: %v", outsiderErr)
		}
		won, target := 0, epoch+1
		if outsiderWon {
			won++
			wins["outsider"]++
		}
		for i, res := range results {
			if res == nil {
				continue
			}
			m := []string{a, b}[i]
			switch {
			case res.OK && res.Epoch == epoch+1:
				won++
				wins[m]++
			case res.OK:
				// Applied after the other commit had landed: no race, the
				// next epoch's commit.
				target = max(target, res.Epoch)
			case res.Code != events.CodeLost:
				t.Fatalf("round %d: %s's commit failed: %s %s", r, m, res.Code, res.Error)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d commits won epoch %d", r, won, epoch)
		}
		o.follow(ctx, "the commit", func() bool { return o.g.Epoch() == target })
		if o.g.HasPendingCommit() {
			t.Fatal("the outsider's lost commit is still pending")
		}
		agree()
	}
	t.Logf("%d epochs, commits won: %v", rounds, wins)

	// Every message reached every other member once.
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		missing := 0
		for _, k := range want {
			if got[k] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries to hosted members missing", missing, len(want))
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	for k, n := range got {
		if n != 1 {
			t.Errorf("%s read %q %d times", k.member, k.data, n)
		}
	}
	mu.Unlock()
	for text, n := range o.read {
		if n != 1 {
			t.Errorf("the outsider read %q %d times", text, n)
		}
	}
	t.Logf("%d deliveries to hosted members and %d to the outsider, each once", len(want), len(o.read))

	// mlsadmin inspect --json shows every member, as the outsider sees them.
	out, err := f.admin(ctx, "inspect", "--json", "h1", string(gid))
	if err != nil {
		t.Fatalf("mlsadmin inspect: %v", err)
	}
	var in struct {
		Epoch   uint64 `json:"epoch"`
		Members []struct {
			Leaf     uint32 `json:"leaf"`
			Identity string `json:"identity"`
		} `json:"members"`
	}
	if err := json.Unmarshal(out, &in); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, out)
	}
	var got2, want2 []string
	for _, m := range in.Members {
		got2 = append(got2, fmt.Sprintf("%d %s", m.Leaf, m.Identity))
	}
	for _, m := range o.g.Members() {
		want2 = append(want2, fmt.Sprintf("%d %s", m.Index, m.Credential.Identity))
	}
	if in.Epoch != o.g.Epoch() || !slices.Equal(got2, want2) {
		t.Errorf("inspect shows epoch %d, members %v; the outsider is in epoch %d with %v", in.Epoch, got2, o.g.Epoch(), want2)
	}
}
