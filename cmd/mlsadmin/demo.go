package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/memory"
)

type demoCmd struct {
	connFlags `embed:"" group:"connection"`
}

// demoSteps is the number of the demo's steps, for its progress.
const demoSteps = 10

// Run drives the scenario: hosted members alice and bob and an outside
// client carol (an engine member of this process, talking MLS over the
// subjects like any other implementation would) create a group, add each
// other from key packages, exchange messages both ways, update, and remove
// carol. It ends with what inspect shows of alice's group.
func (d *demoCmd) Run(e *env) error {
	ctx := e.ctx
	sess, err := d.connect(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	c, err := events.NewClient(ctx, sess.js, sess.s, "")
	if err != nil {
		return fmt.Errorf("%w (is a worker running? start one with: go run ./cmd/mlsworker)", err)
	}
	defer c.Close()
	run := nuid.Next()[:8]
	alice, bob := "alice-"+run, "bob-"+run
	gid := []byte("demo-" + run)
	// Each step is a numbered line; on a terminal a bar below them too.
	bar, n := newProgress(e.stdout, demoSteps, "demo"), 0
	defer bar.done()
	step := func(format string, args ...any) {
		n++
		bar.println(e.stdout, fmt.Sprintf("[%d/%d] ", n, demoSteps)+fmt.Sprintf(format, args...))
		bar.add(1)
	}
	do := func(cmd *events.Command) (*events.Result, error) {
		sctx, cancel := context.WithTimeout(ctx, d.Timeout)
		defer cancel()
		r, err := c.Do(sctx, cmd)
		if err != nil {
			return nil, err
		}
		if !r.OK {
			return r, fmt.Errorf("%s for %s: %s: %s", cmd.Kind, cmd.Member, r.Code, r.Error)
		}
		return r, nil
	}
	// Every event of this run's members, from the start: an event can come
	// before the step that waits for it asks.
	inbox, stopInbox := c.Subscribe(func(ev *events.Event) bool { return strings.HasSuffix(ev.Member, "-"+run) }, 4096)
	defer stopInbox()
	var backlog []*events.Event
	wait := func(what string, match func(*events.Event) bool) (*events.Event, error) {
		for i, ev := range backlog {
			if match(ev) {
				backlog = append(backlog[:i], backlog[i+1:]...)
				return ev, nil
			}
		}
		t := time.After(d.Timeout)
		for {
			select {
			case ev := <-inbox:
				if match(ev) {
					return ev, nil
				}
				backlog = append(backlog, ev)
			case <-t:
				return nil, fmt.Errorf("%s: no event after %v", what, d.Timeout)
			}
		}
	}

	// Carol is outside: her state is in this process.
	suite, _ := ciphersuite.Lookup(engine.DefaultSuite)
	carolKey, err := suite.GenerateSigningKey(rand.Reader)
	if err != nil {
		return err
	}
	carolStore := memory.New()
	carolCfg := &engine.Config{}
	carolCfg.RatchetTreeExtension = true
	carolKP, err := engine.NewKeyPackage(ctx, carolStore, carolKey, carolCfg,
		wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("carol")}, nil)
	if err != nil {
		return err
	}
	carolKPBytes, err := wire.Marshal(carolKP)
	if err != nil {
		return err
	}
	logc, stopLog, err := c.Log(ctx, gid, "")
	if err != nil {
		return err
	}
	defer stopLog()
	next := func(what string, match func(events.LogMsg) bool) (events.LogMsg, error) {
		t := time.After(d.Timeout)
		for {
			select {
			case m := <-logc:
				if match(m) {
					return m, nil
				}
			case <-t:
				return events.LogMsg{}, fmt.Errorf("%s: nothing in the log after %v", what, d.Timeout)
			}
		}
	}

	for _, m := range []string{alice, bob} {
		if _, err := do(&events.Command{Kind: events.CmdCreateMember, Member: m}); err != nil {
			return err
		}
	}
	step("hosted members %s and %s created", alice, bob)
	r, err := do(&events.Command{Kind: events.CmdKeyPackages, Member: bob})
	if err != nil {
		return err
	}
	if _, err := do(&events.Command{Kind: events.CmdCreateGroup, Member: alice, Group: gid}); err != nil {
		return err
	}
	step("%s created group %s", alice, gid)
	r, err = do(&events.Command{Kind: events.CmdAdd, Member: alice, Group: gid, KeyPackages: append(r.KeyPackages, carolKPBytes)})
	if err != nil {
		return err
	}
	step("%s added %s and carol (outside) from their key packages: epoch %d", alice, bob, r.Epoch)
	if _, err := wait(bob+" joins", func(ev *events.Event) bool { return ev.Kind == events.EvJoined && ev.Member == bob }); err != nil {
		return err
	}
	wm, err := next("carol's Welcome", func(m events.LogMsg) bool { return m.Kind == events.InputWelcome && m.Member == "" })
	if err != nil {
		return err
	}
	welcome, err := wire.Unmarshal[wire.MLSMessage](wm.Data)
	if err != nil {
		return err
	}
	carol, err := engine.JoinGroup(ctx, carolStore, welcome, carolCfg, nil)
	if err != nil {
		return fmt.Errorf("carol joins: %w", err)
	}
	step("%s and carol joined", bob)

	// Messages, both ways.
	if _, err := do(&events.Command{Kind: events.CmdSend, Member: alice, Group: gid, Data: []byte("hello from alice")}); err != nil {
		return err
	}
	ev, err := wait(bob+" reads", func(ev *events.Event) bool { return ev.Kind == events.EvApplication && ev.Member == bob })
	if err != nil {
		return err
	}
	am, err := next("alice's message", func(m events.LogMsg) bool { return m.Kind == events.InputMsg && m.From == alice })
	if err != nil {
		return err
	}
	rm, err := carol.ProcessBytes(ctx, am.Data)
	if err != nil {
		return fmt.Errorf("carol reads alice: %w", err)
	}
	step("%s and carol read %q", bob, ev.Data)
	if !bytes.Equal(rm.ApplicationData, ev.Data) {
		return errors.New("carol and bob read different messages")
	}
	msg, err := carol.Protect(ctx, []byte("hello from carol"), nil)
	if err != nil {
		return err
	}
	if err := c.Publish(ctx, gid, msg.Bytes()); err != nil {
		return err
	}
	for _, m := range []string{alice, bob} {
		ev, err := wait(m+" reads carol", func(ev *events.Event) bool { return ev.Kind == events.EvApplication && ev.Member == m })
		if err != nil {
			return err
		}
		step("%s read %q", m, ev.Data)
	}

	// An update, then carol's removal.
	if _, err := do(&events.Command{Kind: events.CmdSelfUpdate, Member: bob, Group: gid}); err != nil {
		return err
	}
	cm, err := next("bob's commit", func(m events.LogMsg) bool { return m.Kind == events.InputCommit })
	if err != nil {
		return err
	}
	rm, err = carol.ProcessBytes(ctx, cm.Data)
	if err != nil {
		return fmt.Errorf("carol processes bob's commit: %w", err)
	}
	if err := carol.MergeStagedCommit(ctx, rm.Commit); err != nil {
		return err
	}
	if _, err := wait(alice+" moves on", func(ev *events.Event) bool { return ev.Kind == events.EvEpoch && ev.Member == alice }); err != nil {
		return err
	}
	step("%s updated its keys: epoch %d", bob, carol.Epoch())
	members := carol.Members()
	bar.println(e.stdout, fmt.Sprintf("  group %s, epoch %d, as carol sees it:", gid, carol.Epoch()))
	for _, m := range members {
		bar.println(e.stdout, fmt.Sprintf("    leaf %-3d %s", m.Index, m.Credential.Identity))
	}
	if _, err := do(&events.Command{Kind: events.CmdRemove, Member: alice, Group: gid, Leaves: []uint32{uint32(carol.OwnLeafIndex())}}); err != nil {
		return err
	}
	cm, err = next("carol's removal", func(m events.LogMsg) bool { return m.Kind == events.InputCommit && m.Epoch == carol.Epoch() })
	if err != nil {
		return err
	}
	rm, err = carol.ProcessBytes(ctx, cm.Data)
	if err != nil {
		return fmt.Errorf("carol processes her removal: %w", err)
	}
	if err := carol.MergeStagedCommit(ctx, rm.Commit); err != nil {
		return err
	}
	step("%s removed carol; carol's view: %v", alice, carol.Status())

	// What an operator sees of alice's group, from her store, as
	// mlsadmin inspect shows it. It needs the workers' root key: without
	// it the demo says so and is done all the same.
	in, err := inspect(ctx, sess, alice, gid)
	switch {
	case err == nil:
		step("%s's group as mlsadmin inspect %s %s shows it:", alice, alice, gid)
		bar.done()
		fmt.Fprintln(e.stdout)
		if err := in.print(e.stdout); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
	default:
		step("inspect skipped: %v", err)
	}
	fmt.Fprintln(e.stdout, "demo done")
	return nil
}
