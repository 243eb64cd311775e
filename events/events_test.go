package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/natsrv"
)

func TestSubjectsRoundTrip(t *testing.T) {
	s := events.Subjects{}
	gid := []byte{0, 1, 0xfe}
	cases := []struct {
		subject string
		want    events.Input
	}{
		{s.Msg(gid), events.Input{Kind: events.InputMsg, GroupID: gid}},
		{s.Msg(nil), events.Input{Kind: events.InputMsg, GroupID: []byte{}}},
		{s.Epoch(gid, 7), events.Input{Kind: events.InputCommit, GroupID: gid, Epoch: 7}},
		{s.Welcome(gid, "bob"), events.Input{Kind: events.InputWelcome, GroupID: gid, Member: "bob"}},
		{s.GroupInfo(gid), events.Input{Kind: events.InputGroupInfo, GroupID: gid}},
		{s.Command("alice", gid), events.Input{Kind: events.InputCommand, GroupID: gid, Member: "alice"}},
		{s.Command("alice", nil), events.Input{Kind: events.InputCommand, Member: "alice"}},
	}
	for _, c := range cases {
		got, err := s.ParseInput(c.subject)
		if err != nil {
			t.Fatalf("%s: %v", c.subject, err)
		}
		if got.Kind != c.want.Kind || !bytes.Equal(got.GroupID, c.want.GroupID) || got.Member != c.want.Member || got.Epoch != c.want.Epoch {
			t.Errorf("%s: got %+v, want %+v", c.subject, got, c.want)
		}
	}
	for _, bad := range []string{"mls", "mls.in", "mls.in.x00", "mls.in.zz.msg", "mls.in.x0.msg", "mls.in._.msg",
		"mls.in.x00.epoch.-1", "mls.in.x00.cmd.a.b", "mls.in.x00.cmd.b@d", "other.in.x00.msg", "mls.ev.a.x00.app"} {
		if _, err := s.ParseInput(bad); !errors.Is(err, events.ErrSubject) {
			t.Errorf("%s: %v, want ErrSubject", bad, err)
		}
	}
}

func TestCommandStrict(t *testing.T) {
	good := &events.Command{ID: "r1", Kind: events.CmdSend, Member: "alice", Group: []byte("g"), Data: []byte("hi")}
	b, err := events.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	c, err := events.DecodeCommand(b)
	if err != nil || c.ID != "r1" || string(c.Data) != "hi" || c.V != events.Version {
		t.Fatalf("round trip: %+v, %v", c, err)
	}
	bad := map[string][]byte{
		"trailing":      append(bytes.Clone(b), 0xc0),
		"garbage":       []byte("not msgpack at all"),
		"empty":         nil,
		"too large":     make([]byte, events.MaxPayload+1),
		"unknown field": mustMsgpack(t, map[string]any{"v": 1, "id": "r", "k": "send", "m": "a", "g": []byte("g"), "zz": 1}),
		"version 2":     mustMsgpack(t, map[string]any{"v": 2, "id": "r", "k": "send", "m": "a", "g": []byte("g")}),
		"no id":         mustMsgpack(t, map[string]any{"v": 1, "k": "send", "m": "a", "g": []byte("g")}),
		"unknown kind":  mustMsgpack(t, map[string]any{"v": 1, "id": "r", "k": "fly", "m": "a"}),
		"no group":      mustMsgpack(t, map[string]any{"v": 1, "id": "r", "k": "send", "m": "a"}),
		"bad member":    mustMsgpack(t, map[string]any{"v": 1, "id": "r", "k": "send", "m": "a.b", "g": []byte("g")}),
		"add nothing":   mustMsgpack(t, map[string]any{"v": 1, "id": "r", "k": "add", "m": "a", "g": []byte("g")}),
		"export 0":      mustMsgpack(t, map[string]any{"v": 1, "id": "r", "k": "export", "m": "a", "g": []byte("g")}),
		"bad proposal":  mustMsgpack(t, map[string]any{"v": 1, "id": "r", "k": "propose", "m": "a", "g": []byte("g"), "proposal": map[string]any{"k": "nope"}}),
	}
	for name, in := range bad {
		if _, err := events.DecodeCommand(in); !errors.Is(err, events.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestEventRoundTrip(t *testing.T) {
	e := &events.Event{Kind: events.EvResult, Member: "bob", Group: []byte("g"), Result: &events.Result{ID: "r", Kind: events.CmdCommit, Code: events.CodeLost}}
	b, err := events.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.DecodeEvent(b)
	if err != nil || got.Result.Code != events.CodeLost {
		t.Fatalf("%+v, %v", got, err)
	}
	if _, err := events.DecodeEvent(mustMsgpack(t, map[string]any{"v": 1, "k": "result", "m": "bob"})); !errors.Is(err, events.ErrMalformed) {
		t.Errorf("result event without result: %v", err)
	}
}

func mustMsgpack(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStreams checks on a server what the worker relies on: the log
// stream puts every subject of a group into one partition, and publishing a
// commit with an expected last subject sequence of 0 on the epoch's subject
// lets exactly one commit per epoch in.
func TestStreams(t *testing.T) {
	ctx := context.Background()
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s := events.Subjects{}
	st, err := js.CreateStream(ctx, s.LogStream("", 8, 1, jetstream.FileStorage))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, s.EventsStream("", 0, 1, jetstream.FileStorage)); err != nil {
		t.Fatal(err)
	}
	parts := map[string]map[string]bool{} // group -> partitions seen
	for g := range 20 {
		gid := []byte(fmt.Sprintf("group-%d", g))
		for _, subj := range []string{s.Msg(gid), s.Command("alice", gid), s.Welcome(gid, "bob"), s.Epoch(gid, 3)} {
			if _, err := js.Publish(ctx, subj, []byte("x")); err != nil {
				t.Fatalf("%s: %v", subj, err)
			}
		}
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		t.Fatal(err)
	}
	for subj := range info.State.Subjects {
		in, err := s.ParseInput(subj)
		if err != nil {
			t.Fatalf("stored subject %s: %v", subj, err)
		}
		var p int
		if _, err := fmt.Sscanf(subj, "mls.p.%d.", &p); err != nil || p < 0 || p >= 8 {
			t.Fatalf("stored subject %s is not in a partition", subj)
		}
		g := string(in.GroupID)
		if parts[g] == nil {
			parts[g] = map[string]bool{}
		}
		parts[g][fmt.Sprint(p)] = true
	}
	used := map[string]bool{}
	for g, ps := range parts {
		if len(ps) != 1 {
			t.Errorf("group %s is in partitions %v", g, ps)
		}
		for p := range ps {
			used[p] = true
		}
	}
	if len(parts) != 20 || len(used) < 3 {
		t.Errorf("%d groups in %d partitions", len(parts), len(used))
	}
	// One commit per epoch.
	gid := []byte("race")
	m1 := nats.NewMsg(s.Epoch(gid, 5))
	m1.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	m2 := nats.NewMsg(s.Epoch(gid, 5))
	m2.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	if _, err := js.PublishMsg(ctx, m1); err != nil {
		t.Fatal(err)
	}
	var ae *jetstream.APIError
	if _, err := js.PublishMsg(ctx, m2); !errors.As(err, &ae) || ae.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("a second commit for the epoch: %v", err)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []*events.Command{
		{ID: "r", Kind: events.CmdSend, Member: "a", Group: []byte("g"), Data: []byte("x")},
		{ID: "r", Kind: events.CmdPropose, Member: "a", Group: []byte("g"), Proposal: &events.Proposal{Kind: events.ProposeRemove, Leaf: 3}},
		{ID: "r", Kind: events.CmdAdd, Member: "a", Group: []byte("g"), KeyPackages: [][]byte{{1, 2}}},
	} {
		b, _ := events.Marshal(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := events.DecodeCommand(b)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		// What decodes re-encodes and decodes to the same command.
		b2, err := events.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := events.DecodeCommand(b2)
		if err != nil || c2.ID != c.ID || c2.Kind != c.Kind || !bytes.Equal(c2.Group, c.Group) {
			t.Fatalf("re-decoding: %+v, %v", c2, err)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	b, _ := events.Marshal(&events.Event{Kind: events.EvApplication, Member: "a", Group: []byte("g"), Data: []byte("hi"), Sender: &events.MemberRef{Leaf: 1}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := events.DecodeEvent(b); err != nil && !errors.Is(err, events.ErrMalformed) {
			t.Fatalf("error %v does not match ErrMalformed", err)
		}
	})
}
