package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/worker"
)

// load reads a member's stored group.
func (h *harness) load(member string, gid []byte) *engine.Group {
	h.t.Helper()
	s, err := jetstore.Open(h.ctx, h.js, jetstore.Options{Member: member, RootKey: root, SweepInterval: -1})
	if err != nil {
		h.t.Fatal(err)
	}
	defer s.Close()
	g, err := engine.LoadGroup(h.ctx, s, gid)
	if err != nil {
		h.t.Fatalf("%s: %v", member, err)
	}
	return g
}

// agree checks that the members are in the same epoch with the same
// epoch authenticator, and returns the epoch.
func (h *harness) agree(gid []byte, members ...string) uint64 {
	h.t.Helper()
	var epoch uint64
	var auth []byte
	for i, m := range members {
		g := h.load(m, gid)
		a := g.EpochAuthenticator().Bytes()
		if i > 0 && (g.Epoch() != epoch || string(a) != string(auth)) {
			h.t.Fatalf("%s is in epoch %d, %s in %d, or their epoch authenticators differ", m, g.Epoch(), members[0], epoch)
		}
		epoch, auth = g.Epoch(), a
	}
	return epoch
}

// atEpoch waits until the members' stored groups are in epoch, whatever
// events were read meanwhile.
func (h *harness) atEpoch(gid []byte, epoch uint64, members ...string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, m := range members {
		for h.load(m, gid).Epoch() != epoch {
			if time.Now().After(deadline) {
				h.t.Fatalf("%s did not reach epoch %d", m, epoch)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// read waits until each of the members received an application message,
// in any order, and checks it.
func (h *harness) read(data string, members ...string) {
	h.t.Helper()
	var ms []func(*events.Event) bool
	for _, m := range members {
		ms = append(ms, func(e *events.Event) bool {
			if e.Kind != events.EvApplication || e.Member != m {
				return false
			}
			if string(e.Data) != data {
				h.t.Errorf("%s read %q, want %q", m, e.Data, data)
			}
			return true
		})
	}
	h.waitAll(ms...)
}

// groupInfo is the last GroupInfo published on the group's subject.
func (h *harness) groupInfo(gid []byte) *wire.MLSMessage {
	h.t.Helper()
	st, err := h.js.Stream(h.ctx, events.DefaultLogStream)
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(h.ctx, h.s.AnyPartition(h.s.GroupInfo(gid)))
	if err != nil {
		h.t.Fatalf("no GroupInfo on the group's subject: %v", err)
	}
	gi, err := wire.Unmarshal[wire.MLSMessage](m.Data)
	if err != nil || gi.GroupInfo == nil {
		h.t.Fatalf("not a GroupInfo on the group's subject: %v", err)
	}
	return gi
}

// publish puts a command in the log without waiting for its result; id,
// if set, is its Nats-Msg-Id.
func (h *harness) publish(c *events.Command, id string) {
	h.t.Helper()
	b, err := events.Marshal(c)
	if err != nil {
		h.t.Fatal(err)
	}
	m := nats.NewMsg(h.s.Command(c.Member, c.Group))
	m.Data = b
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	if _, err := h.js.PublishMsg(h.ctx, m); err != nil {
		h.t.Fatal(err)
	}
}

// bad sends a command that must be refused with code.
func (h *harness) bad(c *events.Command, code events.Code, detail string) {
	h.t.Helper()
	r := h.do(c)
	if r.OK || r.Code != code || !strings.Contains(r.Error, detail) {
		h.t.Fatalf("%s %+v: got %+v, want %s (%q)", c.Kind, c.Proposal, r, code, detail)
	}
}

// TestExternalJoin: a hosted member joins by external commit from the
// GroupInfo the committer published; a command published twice joins
// once and answers the same; unusable GroupInfos are refused.
func TestExternalJoin(t *testing.T) {
	h := start(t)
	gid := []byte("open")
	h.newGroup(gid, "a", "b", "c")
	gi := h.groupInfo(gid)
	if gi.GroupInfo.GroupContext.Epoch != 1 || wire.FindExtension(gi.GroupInfo.Extensions, wire.ExtensionTypeRatchetTree) == nil {
		t.Fatalf("the committer's GroupInfo: epoch %d, tree %v", gi.GroupInfo.GroupContext.Epoch,
			wire.FindExtension(gi.GroupInfo.Extensions, wire.ExtensionTypeRatchetTree) != nil)
	}
	// GroupInfos that cannot be used; nothing is stored for c.
	noTree, err := h.load("a", gid).GroupInfo(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.bad(&events.Command{Kind: events.CmdExternalJoin, Member: "c", Group: gid, GroupInfo: noTree.Bytes()}, events.CodeBadArgument, "ratchet tree")
	h.bad(&events.Command{Kind: events.CmdExternalJoin, Member: "c", Group: gid, GroupInfo: []byte("garbage")}, events.CodeBadArgument, "GroupInfo")
	h.bad(&events.Command{Kind: events.CmdExternalJoin, Member: "c", Group: []byte("elsewhere"), GroupInfo: gi.Bytes()}, events.CodeWrongGroup, "another group")
	// Without a group it could not be ordered with the group's commits.
	h.publish(&events.Command{V: events.Version, ID: "no-group", Kind: events.CmdExternalJoin, Member: "c", GroupInfo: gi.Bytes()}, "")
	if e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvRejected && e.Member == "c" }); e.Code != events.CodeMalformed {
		t.Fatalf("an external join naming no group: %s %s", e.Code, e.Detail)
	}
	h.bad(&events.Command{Kind: events.CmdExternalJoin, Member: "nobody", Group: gid, GroupInfo: gi.Bytes()}, events.CodeUnknownMember, "")

	join := &events.Command{ID: "join-c", Kind: events.CmdExternalJoin, Member: "c", Group: gid, GroupInfo: gi.Bytes()}
	h.publish(join, "")
	var r *events.Result
	h.waitAll(func(e *events.Event) bool {
		if e.Kind == events.EvResult && e.Result.ID == join.ID {
			r = e.Result
			return true
		}
		return false
	},
		func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == "c" && e.Epoch == 2 },
		func(e *events.Event) bool {
			// The joiner's external commit adds it, at its leaf.
			return e.Kind == events.EvEpoch && e.Member == "a" && e.Epoch == 2 && len(e.Added) == 1 && e.Sender != nil && e.Added[0].Leaf == e.Sender.Leaf
		},
		func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == "b" && e.Epoch == 2 })
	if !r.OK || r.Epoch != 2 {
		t.Fatalf("external join: %+v", r)
	}
	if e := h.agree(gid, "a", "b", "c"); e != 2 {
		t.Fatalf("epoch %d", e)
	}
	if gi := h.groupInfo(gid); gi.GroupInfo.GroupContext.Epoch != 2 {
		t.Fatalf("the joiner published the GroupInfo of epoch %d", gi.GroupInfo.GroupContext.Epoch)
	}
	h.ok(&events.Command{Kind: events.CmdSend, Member: "c", Group: gid, Data: []byte("hello from c")})
	h.read("hello from c", "a", "b")

	// The same command bytes again, under another message id: the log
	// takes them, the worker answers the same and joins no second time.
	// The events stream would drop the repeated result as a duplicate of
	// the first; with a short window it shows it.
	before := map[string]string{}
	for _, m := range []string{"a", "b", "c"} {
		before[m] = h.state(m, gid)
	}
	cfg := h.s.EventsStream("", 0, 1, jetstream.FileStorage)
	cfg.Duplicates = 200 * time.Millisecond
	if _, err := h.js.UpdateStream(h.ctx, cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	h.publish(join, "again")
	again := h.wait(func(e *events.Event) bool { return e.Kind == events.EvResult && e.Result.ID == join.ID }).Result
	if again.OK != r.OK || again.Code != r.Code || again.Epoch != r.Epoch || again.Error != r.Error {
		t.Fatalf("the command again: %+v, first %+v", again, r)
	}
	for _, m := range []string{"a", "b", "c"} {
		if after := h.state(m, gid); after != before[m] {
			t.Errorf("%s's stored state changed", m)
		}
	}
	// Joining again with another request is refused.
	h.bad(&events.Command{Kind: events.CmdExternalJoin, Member: "c", Group: gid, GroupInfo: h.groupInfo(gid).Bytes()}, events.CodeExists, "already")
	h.ok(&events.Command{Kind: events.CmdSend, Member: "a", Group: gid, Data: []byte("still three")})
	h.read("still three", "b", "c")
	// Without a GroupInfo in the command, d joins from the last one on the
	// group's groupinfo subject.
	h.ok(&events.Command{Kind: events.CmdCreateMember, Member: "d"})
	if r := h.ok(&events.Command{Kind: events.CmdExternalJoin, Member: "d", Group: gid}); r.Epoch != 3 {
		t.Fatalf("d joined in epoch %d", r.Epoch)
	}
	for _, m := range []string{"a", "b", "c"} {
		h.wait(func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == m && e.Epoch == 3 })
	}
	if e := h.agree(gid, "a", "b", "c", "d"); e != 3 {
		t.Fatalf("epoch %d", e)
	}
}

// TestExternalJoinRace: a commit and an external join for the same epoch
// are in the log together; the server lets one in, the joiner's state of
// the losing join is deleted, and it joins from the next GroupInfo.
func TestExternalJoinRace(t *testing.T) {
	h := start(t)
	gid := []byte("race-ext")
	h.newGroup(gid, "a", "b", "c")
	gi := h.groupInfo(gid)
	update := &events.Command{ID: "upd", Kind: events.CmdSelfUpdate, Member: "a", Group: gid}
	join := &events.Command{ID: "ej", Kind: events.CmdExternalJoin, Member: "c", Group: gid, GroupInfo: gi.Bytes()}
	h.publish(update, "")
	h.publish(join, "")
	results := map[string]*events.Result{}
	for len(results) < 2 {
		e := h.wait(func(e *events.Event) bool {
			return e.Kind == events.EvResult && (e.Result.ID == update.ID || e.Result.ID == join.ID)
		})
		results[e.Result.ID] = e.Result
	}
	won, lost := results[update.ID], results[join.ID]
	if won.OK == lost.OK {
		t.Fatalf("self-update %+v, external join %+v: want exactly one to win", won, lost)
	}
	if !won.OK {
		won, lost = lost, won
	}
	t.Logf("%s won, %s lost", won.Kind, lost.Kind)
	if lost.Code != events.CodeLost {
		t.Fatalf("the loser: %+v", lost)
	}
	if lost.ID == join.ID {
		// The half-joined state is gone.
		s, err := jetstore.Open(h.ctx, h.js, jetstore.Options{Member: "c", RootKey: root, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := engine.LoadGroup(h.ctx, s, gid); err == nil {
			t.Fatal("the losing joiner kept its state")
		}
		s.Close()
		h.atEpoch(gid, 2, "a", "b")
		h.agree(gid, "a", "b")
		// From the winner's GroupInfo, it joins.
		r := h.ok(&events.Command{Kind: events.CmdExternalJoin, Member: "c", Group: gid, GroupInfo: h.groupInfo(gid).Bytes()})
		if r.Epoch != 3 {
			t.Fatalf("joining again: epoch %d", r.Epoch)
		}
		h.atEpoch(gid, 3, "a", "b", "c")
	} else {
		h.atEpoch(gid, 2, "a", "b", "c")
	}
	h.agree(gid, "a", "b", "c")
	h.ok(&events.Command{Kind: events.CmdSend, Member: "c", Group: gid, Data: []byte("in")})
	h.read("in", "a", "b")
}

// TestProposalKinds: every proposal kind of package events, proposed by
// one hosted member and committed by another; malformed arguments are
// refused with bad-argument and change nothing; a committed ReInit ends
// the group.
func TestProposalKinds(t *testing.T) {
	const customProposal, customExtension = wire.ProposalType(0xf001), wire.ExtensionType(0xff01)
	caps := group.DefaultCapabilities(engine.DefaultSuite)
	caps.Proposals = append(caps.Proposals, customProposal)
	caps.Extensions = append(caps.Extensions, customExtension)
	h := startWith(t, func(c *worker.Config) { c.Engine.Capabilities = caps })
	gid := []byte("proposals")
	h.newGroup(gid, "a", "b", "c")
	// An external PSK both members hold (no command stores one).
	for _, m := range []string{"a", "b"} {
		s, err := jetstore.Open(h.ctx, h.js, jetstore.Options{Member: m, RootKey: root, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := engine.StorePSK(h.ctx, s, []byte("shared"), secret.Copy([]byte("0123456789abcdef0123456789abcdef"))); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	epoch := uint64(1)
	// b proposes, a commits, both agree; also waits for the events that
	// come with b's new epoch.
	commit := func(p *events.Proposal, also ...func(*events.Event) bool) {
		t.Helper()
		h.ok(&events.Command{Kind: events.CmdPropose, Member: "b", Group: gid, Proposal: p})
		r := h.ok(&events.Command{Kind: events.CmdCommit, Member: "a", Group: gid})
		if r.Epoch != epoch+1 {
			t.Fatalf("%s: committed epoch %d, want %d", p.Kind, r.Epoch, epoch+1)
		}
		epoch++
		e := epoch
		h.waitAll(append(also, func(ev *events.Event) bool { return ev.Kind == events.EvEpoch && ev.Member == "b" && ev.Epoch == e })...)
		h.agree(gid, "a", "b")
	}
	list := func(exts ...wire.Extension) []byte {
		b, err := wire.Marshal(&wire.GroupContextExtensions{Extensions: exts})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	kp := h.ok(&events.Command{Kind: events.CmdKeyPackages, Member: "c"}).KeyPackages[0]
	commit(&events.Proposal{Kind: events.ProposeAdd, KeyPackage: kp},
		func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == "c" })
	h.agree(gid, "a", "b", "c")
	commit(&events.Proposal{Kind: events.ProposeUpdate},
		func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == "c" && e.Epoch == 3 })
	h.agree(gid, "a", "b", "c")
	commit(&events.Proposal{Kind: events.ProposeRemove, Leaf: 2},
		func(e *events.Event) bool { return e.Kind == events.EvGroupDeleted && e.Member == "c" })
	commit(&events.Proposal{Kind: events.ProposeExternalPSK, PSKID: []byte("shared")})
	commit(&events.Proposal{Kind: events.ProposeResumption, Epoch: epoch})
	rc, err := wire.Marshal(&wire.RequiredCapabilities{ProposalTypes: []wire.ProposalType{customProposal}})
	if err != nil {
		t.Fatal(err)
	}
	commit(&events.Proposal{Kind: events.ProposeGCE, Extensions: list(
		wire.Extension{ExtensionType: wire.ExtensionTypeRequiredCapabilities, ExtensionData: rc},
		wire.Extension{ExtensionType: customExtension, ExtensionData: []byte("policy")})})
	if wire.FindExtension(h.load("b", gid).GroupContext().Extensions, customExtension) == nil {
		t.Fatal("the GroupContext extensions were not replaced")
	}
	commit(&events.Proposal{Kind: events.ProposeCustom, Type: uint16(customProposal), Body: []byte("custom body")})

	// Arguments that do not decode, or that no commit could carry: refused,
	// and nothing stored.
	before := map[string]string{}
	for _, m := range []string{"a", "b"} {
		before[m] = h.state(m, gid)
	}
	for _, p := range []struct {
		p      *events.Proposal
		detail string
	}{
		{&events.Proposal{Kind: events.ProposeAdd, KeyPackage: []byte("not a key package")}, "key package"},
		{&events.Proposal{Kind: events.ProposeRemove, Leaf: 7}, "blank leaf"},
		{&events.Proposal{Kind: events.ProposeExternalPSK, PSKID: []byte("nobody has it")}, "unknown psk"},
		{&events.Proposal{Kind: events.ProposeExternalPSK}, "psk id"},
		{&events.Proposal{Kind: events.ProposeResumption, Epoch: epoch + 5}, "unknown psk"},
		{&events.Proposal{Kind: events.ProposeGCE, Extensions: []byte{0x05, 0x00}}, "extensions"},
		{&events.Proposal{Kind: events.ProposeGCE}, "extension list"},
		{&events.Proposal{Kind: events.ProposeGCE, Extensions: list(wire.Extension{ExtensionType: 0xff02})}, "does not support extension"},
		{&events.Proposal{Kind: events.ProposeGCE, Extensions: list(wire.Extension{ExtensionType: wire.ExtensionTypeRequiredCapabilities, ExtensionData: []byte{1}})}, "required_capabilities"},
		{&events.Proposal{Kind: events.ProposeCustom, Type: 0xf0f0}, "does not support proposal type"},
		{&events.Proposal{Kind: events.ProposeCustom, Type: uint16(wire.ProposalTypeAdd)}, "not a custom type"},
		{&events.Proposal{Kind: events.ProposeReInit}, "new group's id"},
		{&events.Proposal{Kind: events.ProposeReInit, NewGroup: []byte("v2"), Suite: 0x7777}, "reinit"},
		{&events.Proposal{Kind: events.ProposeReInit, NewGroup: []byte("v2"), Extensions: []byte{0xff}}, "extensions"},
	} {
		h.bad(&events.Command{Kind: events.CmdPropose, Member: "b", Group: gid, Proposal: p.p}, events.CodeBadArgument, p.detail)
	}
	for _, m := range []string{"a", "b"} {
		if after := h.state(m, gid); after != before[m] {
			t.Errorf("%s's stored state changed:\nbefore:\n%s\nafter:\n%s", m, before[m], after)
		}
	}

	// ReInit (§11.2): once committed, the group is ended for both, and
	// every command that would use it gets a clear refusal.
	commit(&events.Proposal{Kind: events.ProposeReInit, NewGroup: []byte("proposals-v2")})
	for _, m := range []string{"a", "b"} {
		if st := h.load(m, gid).Status(); st != group.StatusReInit {
			t.Fatalf("%s: status %v after the ReInit", m, st)
		}
		h.bad(&events.Command{Kind: events.CmdSend, Member: m, Group: gid, Data: []byte("x")}, events.CodeInvalid, "reinit")
		h.bad(&events.Command{Kind: events.CmdPropose, Member: m, Group: gid, Proposal: &events.Proposal{Kind: events.ProposeUpdate}},
			events.CodeInvalid, "reinit")
		h.bad(&events.Command{Kind: events.CmdSelfUpdate, Member: m, Group: gid}, events.CodeInvalid, "reinit")
	}
}

// TestKeyPackagesRedelivered: the same key-packages command in the log
// twice answers with the same key packages, and makes no second set.
func TestKeyPackagesRedelivered(t *testing.T) {
	h := start(t)
	h.ok(&events.Command{Kind: events.CmdCreateMember, Member: "k"})
	// The events stream would drop the repeated result as a duplicate of
	// the first; with a short window it shows it.
	cfg := h.s.EventsStream("", 0, 1, jetstream.FileStorage)
	cfg.Duplicates = 200 * time.Millisecond
	if _, err := h.js.UpdateStream(h.ctx, cfg); err != nil {
		t.Fatal(err)
	}
	c := &events.Command{V: events.Version, ID: "kps-once", Kind: events.CmdKeyPackages, Member: "k", Count: 2}
	result := func() *events.Result {
		return h.wait(func(e *events.Event) bool { return e.Kind == events.EvResult && e.Result.ID == c.ID }).Result
	}
	h.publish(c, "")
	first := result()
	time.Sleep(300 * time.Millisecond)
	h.publish(c, "again")
	second := result()
	if !first.OK || len(first.KeyPackages) != 2 || fmt.Sprint(first.KeyPackages) != fmt.Sprint(second.KeyPackages) {
		t.Fatalf("first %d key packages, again %d, the same: %v", len(first.KeyPackages), len(second.KeyPackages),
			fmt.Sprint(first.KeyPackages) == fmt.Sprint(second.KeyPackages))
	}
	s, err := jetstore.Open(h.ctx, h.js, jetstore.Options{Member: "k", RootKey: root, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kps, err := engine.KeyPackages(h.ctx, s)
	if err != nil || len(kps) != 2 {
		t.Fatalf("%d key packages stored (%v), want 2", len(kps), err)
	}
}
