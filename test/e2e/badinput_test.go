package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
)

// TestBadInput: bad input on every subject of the contract, sent to worker
// processes, gets a rejected event or a clear command error, a copy on the
// dead-letter subject where it was a group's message, and leaves every
// hosted member's stored state byte-identical; the group goes on.
func TestBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := newFleet(t, ctx, 2, 4)
	s := events.Subjects{}
	gid, other := []byte("bad-input"), []byte("elsewhere")
	for _, m := range []string{"alice", "bob", "carol"} {
		f.do(ctx, &events.Command{Kind: events.CmdCreateMember, Member: m})
	}
	kps := f.do(ctx, &events.Command{Kind: events.CmdKeyPackages, Member: "bob"}).KeyPackages
	kps = append(kps, f.do(ctx, &events.Command{Kind: events.CmdKeyPackages, Member: "carol"}).KeyPackages...)
	inbox, stop := f.c.Subscribe(func(*events.Event) bool { return true }, 1<<12)
	defer stop()
	var backlog []*events.Event
	wait := func(what string, match func(*events.Event) bool) *events.Event {
		t.Helper()
		for i, e := range backlog {
			if match(e) {
				backlog = append(backlog[:i], backlog[i+1:]...)
				return e
			}
		}
		timeout := time.After(30 * time.Second)
		for {
			select {
			case e := <-inbox:
				if match(e) {
					return e
				}
				backlog = append(backlog, e)
			case <-timeout:
				t.Fatalf("no event: %s", what)
			}
		}
	}
	f.do(ctx, &events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: gid})
	f.do(ctx, &events.Command{Kind: events.CmdAdd, Member: "alice", Group: gid, KeyPackages: kps})
	for _, m := range []string{"bob", "carol"} {
		wait(m+" joins", func(e *events.Event) bool { return e.Kind == events.EvJoined && e.Member == m })
	}
	f.do(ctx, &events.Command{Kind: events.CmdCreateGroup, Member: "alice", Group: other})
	// A message of the group, to replay, and one of another group.
	logc, stopLog, err := f.c.Log(ctx, gid, "")
	if err != nil {
		t.Fatal(err)
	}
	defer stopLog()
	f.do(ctx, &events.Command{Kind: events.CmdSend, Member: "alice", Group: gid, Data: []byte("once")})
	var sent []byte
	for sent == nil {
		if m := <-logc; m.Kind == events.InputMsg {
			sent = m.Data
		}
	}
	otherLog, stopOther, err := f.c.Log(ctx, other, "")
	if err != nil {
		t.Fatal(err)
	}
	defer stopOther()
	f.do(ctx, &events.Command{Kind: events.CmdSend, Member: "alice", Group: other, Data: []byte("elsewhere")})
	var foreign []byte
	for foreign == nil {
		if m := <-otherLog; m.Kind == events.InputMsg {
			foreign = m.Data
		}
	}
	// Carol is removed.
	f.do(ctx, &events.Command{Kind: events.CmdRemove, Member: "alice", Group: gid, Leaves: []uint32{2}})
	wait("carol's removal", func(e *events.Event) bool { return e.Kind == events.EvGroupDeleted && e.Member == "carol" })
	wait("bob in epoch 2", func(e *events.Event) bool { return e.Kind == events.EvEpoch && e.Member == "bob" && e.Epoch == 2 })

	members := []string{"alice", "bob"}
	state := func(m string) string {
		t.Helper()
		st, err := jetstore.Open(ctx, f.js, jetstore.Options{Member: m, RootKey: []byte(mustHex(t, f.root)), SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		g, err := st.Load(ctx, gid)
		if err != nil {
			t.Fatal(err)
		}
		out := fmt.Sprintf("version %d\n", g.Version)
		for _, r := range g.Records {
			out += fmt.Sprintf("%v %x\n", r.Key, r.Value)
		}
		return out
	}
	before := map[string]string{}
	for _, m := range members {
		before[m] = state(m)
	}
	dlq, err := f.js.OrderedConsumer(ctx, events.DefaultEventsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.DeadLetter(gid)}})
	if err != nil {
		t.Fatal(err)
	}
	pub := func(subject string, data []byte) {
		t.Helper()
		if _, err := f.js.Publish(ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	rejected := func(member string, codes ...events.Code) {
		t.Helper()
		e := wait(fmt.Sprintf("%s rejects with %v", member, codes), func(e *events.Event) bool { return e.Kind == events.EvRejected && e.Member == member })
		for _, c := range codes {
			if e.Code == c {
				return
			}
		}
		t.Fatalf("%s: rejected with %s (%s), want one of %v", member, e.Code, e.Detail, codes)
	}
	dead := 0
	// Group messages: garbage on the group's subject and its epoch's, a
	// message of another group, a replay.
	for _, c := range []struct {
		subject string
		data    []byte
		codes   []events.Code
	}{
		{s.Msg(gid), []byte("garbage"), []events.Code{events.CodeMalformed}},
		{s.Epoch(gid, 2), []byte{0, 1, 2}, []events.Code{events.CodeMalformed}},
		{s.Msg(gid), foreign, []events.Code{events.CodeWrongGroup}},
		{s.Msg(gid), sent, []events.Code{events.CodeReplay, events.CodeWrongEpoch}},
	} {
		pub(c.subject, c.data)
		for _, m := range members {
			rejected(m, c.codes...)
			dead++
		}
	}
	// Welcomes: not one, for bob; one for a member nobody hosts; garbage
	// for members hosted elsewhere and as a GroupInfo (no hosted member
	// applies those).
	pub(s.Welcome(gid, "bob"), []byte("not a welcome"))
	rejected("bob", events.CodeMalformed)
	pub(s.Welcome(gid, "nobody"), []byte("not a welcome"))
	rejected("nobody", events.CodeUnknownMember)
	pub(s.OutsideWelcome(gid), []byte("garbage"))
	pub(s.GroupInfo(gid), []byte("garbage"))
	// Commands: undecodable (about the group, and about no group), for an
	// unknown member, from the removed member, naming another member than
	// its subject.
	pub(s.Command("bob", gid), []byte{0xc1})
	rejected("bob", events.CodeMalformed)
	pub(s.Command("bob", nil), []byte("garbage"))
	rejected("bob", events.CodeMalformed)
	for _, c := range []*events.Command{
		{Kind: events.CmdSend, Member: "mallory", Group: gid, Data: []byte("x")},
		{Kind: events.CmdSend, Member: "carol", Group: gid, Data: []byte("x")},
		{Kind: events.CmdSelfUpdate, Member: "carol", Group: gid},
	} {
		r, err := f.c.Do(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK || r.Code == "" || r.Error == "" {
			t.Fatalf("%s by %s: %+v", c.Kind, c.Member, r)
		}
	}
	b, _ := events.Marshal(&events.Command{V: events.Version, ID: "spoof", Kind: events.CmdSend, Member: "alice", Group: gid, Data: []byte("x")})
	pub(s.Command("bob", gid), b)
	if e := wait("the spoofed command's result", func(e *events.Event) bool { return e.Kind == events.EvResult && e.Result.ID == "spoof" }); e.Result.OK {
		t.Fatal("a command for alice on bob's subject was applied")
	}
	// Everything above about the group is applied (one partition, in
	// order): the members' stored state is as it was.
	for _, m := range members {
		if after := state(m); after != before[m] {
			t.Errorf("%s's stored state changed:\nbefore:\n%s\nafter:\n%s", m, before[m], after)
		}
	}
	// An oversized payload never enters the log.
	if _, err := f.js.Publish(ctx, s.Msg(gid), make([]byte, events.MaxPayload+1)); err == nil {
		t.Fatal("an oversized payload was accepted")
	}
	// The group goes on, after all of the above.
	f.do(ctx, &events.Command{Kind: events.CmdSend, Member: "bob", Group: gid, Data: []byte("fine")})
	if e := wait("alice reads", func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == "alice" }); string(e.Data) != "fine" {
		t.Fatalf("alice read %q", e.Data)
	}
	// Every rejected group message has its dead-letter copy.
	copies := 0
	for {
		m, err := dlq.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			break
		}
		if m.Headers().Get("Mls-Code") == "" {
			t.Errorf("dead letter without a code")
		}
		copies++
	}
	// One copy per input (its id is the input's sequence), however many
	// members rejected it.
	if copies != dead/len(members) {
		t.Errorf("%d dead-letter copies for %d rejected group messages", copies, dead/len(members))
	}
}
