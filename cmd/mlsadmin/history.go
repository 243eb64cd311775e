package main

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/mls/wire"
)

type historyCmd struct {
	connFlags `embed:"" group:"connection"`
	Group     string `arg:"" help:"Group id (text, or hex:<hex>)."`
	Limit     int    `name:"limit" placeholder:"N" default:"100" help:"Show the last N entries (0: all)."`
	Plaintext bool   `name:"plaintext" help:"Also show application plaintext (send commands, received messages). Off by default: the streams hold it in the clear, the terminal need not."`
}

// historyEntry is one input or event. Its JSON field names are stable.
type historyEntry struct {
	Stream  string    `json:"stream"` // log, events or dlq
	Seq     uint64    `json:"seq"`    // in its stream
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
	// Kind is the input's kind (msg, commit, welcome, groupinfo,
	// command), the event's (joined, epoch, app, proposal, rejected,
	// result, deleted), or dead_letter.
	Kind        string  `json:"kind"`
	Size        int     `json:"size"`
	Member      string  `json:"member,omitempty"` // the command's, Welcome's or event's hosted member
	From        string  `json:"from,omitempty"`   // the hosted member that published an MLS message
	Epoch       *uint64 `json:"epoch,omitempty"`
	WireFormat  string  `json:"wire_format,omitempty"`
	ContentType string  `json:"content_type,omitempty"`
	Command     string  `json:"command,omitempty"` // a command's kind, or the command a result answers
	RequestID   string  `json:"request_id,omitempty"`
	OK          *bool   `json:"ok,omitempty"` // a result's outcome
	Code        string  `json:"code,omitempty"`
	InputSeq    uint64  `json:"input_seq,omitempty"` // the log sequence that caused an event or dead letter
	Plaintext   *string `json:"plaintext,omitempty"` // only with --plaintext
}

type historyJSON struct {
	GroupID    string         `json:"group_id"`
	GroupIDHex string         `json:"group_id_hex"`
	Entries    []historyEntry `json:"entries"`
}

// Run reads the group's subjects of the log stream and of the events
// stream (events and dead letters) from their first stored message and
// merges them by time.
func (c *historyCmd) Run(e *env) error {
	gid, err := parseID(c.Group)
	if err != nil {
		return err
	}
	if c.Limit < 0 {
		return usageErr(errors.New("--limit must be 0 or more"))
	}
	s, err := c.connect(e.ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	p, tok := s.prefix(), events.GroupToken(gid)
	var all []historyEntry
	reads := []struct {
		stream, name, filter string
		entry                func(jetstream.Msg) historyEntry
	}{
		{events.DefaultLogStream, "log", p + ".p.*." + tok + ".>", func(m jetstream.Msg) historyEntry { return c.input(s, m) }},
		{events.DefaultEventsStream, "events", p + ".ev.*." + tok + ".*", c.event},
		{events.DefaultEventsStream, "dlq", p + ".dlq." + tok, deadLetter},
	}
	for _, r := range reads {
		got, err := readSubjects(e.ctx, s.js, r.stream, r.filter, c.Limit, func(m jetstream.Msg) historyEntry {
			h := r.entry(m)
			h.Stream, h.Subject, h.Size = r.name, m.Subject(), len(m.Data())
			if md, err := m.Metadata(); err == nil {
				h.Seq, h.Time = md.Sequence.Stream, md.Timestamp.UTC()
			}
			return h
		})
		if err != nil {
			return fmt.Errorf("reading %s: %w", r.stream, err)
		}
		all = append(all, got...)
	}
	order := map[string]int{"log": 0, "events": 1, "dlq": 2}
	slices.SortStableFunc(all, func(a, b historyEntry) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(order[a.Stream], order[b.Stream]), cmp.Compare(a.Seq, b.Seq))
	})
	if c.Limit > 0 && len(all) > c.Limit {
		all = all[len(all)-c.Limit:]
	}
	if e.json {
		if all == nil {
			all = []historyEntry{}
		}
		return writeJSON(e.stdout, historyJSON{GroupID: showID(gid), GroupIDHex: hex.EncodeToString(gid), Entries: all})
	}
	t := table(e.stdout)
	fmt.Fprintln(t, "STREAM\tSEQ\tTIME\tKIND\tSIZE\tDETAIL")
	for _, h := range all {
		fmt.Fprintf(t, "%s\t%d\t%s\t%s\t%d\t%s\n", h.Stream, h.Seq, h.Time.Format("2006-01-02T15:04:05.000Z"), h.Kind, h.Size, h.detail())
	}
	return t.Flush()
}

// readSubjects reads a stream's messages on filter from the first stored
// one to the last one there now, keeping the last limit (0: all).
func readSubjects(ctx context.Context, js jetstream.JetStream, stream, filter string, limit int, entry func(jetstream.Msg) historyEntry) ([]historyEntry, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("%w (has a worker run on this server?)", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, err
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	var out []historyEntry
	for seen := uint64(0); seen < total; {
		batch, err := cons.Fetch(int(min(total-seen, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n, last := 0, false
		for m := range batch.Messages() {
			n++
			out = append(out, entry(m))
			if limit > 0 && len(out) > 2*limit {
				out = append(out[:0], out[len(out)-limit:]...)
			}
			if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
				last = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if n == 0 || last {
			break // fewer than counted: some aged out meanwhile
		}
		seen += uint64(n)
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// input describes an input of the log.
func (c *historyCmd) input(s *session, m jetstream.Msg) historyEntry {
	h := historyEntry{From: m.Headers().Get("Mls-From")}
	in, err := s.s.ParseInput(m.Subject())
	if err != nil {
		h.Kind = "invalid"
		return h
	}
	h.Member = in.Member
	switch in.Kind {
	case events.InputMsg, events.InputCommit:
		h.Kind = "msg"
		if in.Kind == events.InputCommit {
			h.Kind = "commit"
		}
		if msg, err := wire.Unmarshal[wire.MLSMessage](m.Data()); err == nil {
			h.WireFormat = msg.WireFormat.String()
			switch {
			case msg.PrivateMessage != nil:
				h.ContentType, h.Epoch = msg.PrivateMessage.ContentType.String(), &msg.PrivateMessage.Epoch
			case msg.PublicMessage != nil:
				h.ContentType, h.Epoch = msg.PublicMessage.Content.ContentType.String(), &msg.PublicMessage.Content.Epoch
			}
		} else {
			h.Code = "malformed"
		}
	case events.InputWelcome:
		h.Kind = "welcome"
	case events.InputGroupInfo:
		h.Kind = "groupinfo"
	case events.InputCommand:
		h.Kind = "command"
		cmd, err := events.DecodeCommand(m.Data())
		if err != nil {
			h.Code = string(events.CodeMalformed)
			break
		}
		h.Command, h.RequestID = string(cmd.Kind), cmd.ID
		if c.Plaintext && cmd.Kind == events.CmdSend {
			p := string(cmd.Data)
			h.Plaintext = &p
		}
		clear(cmd.Data)
	}
	return h
}

// event describes an event. A result's exported secret is never shown.
func (c *historyCmd) event(m jetstream.Msg) historyEntry {
	ev, err := events.DecodeEvent(m.Data())
	if err != nil {
		return historyEntry{Kind: "invalid"}
	}
	h := historyEntry{Kind: string(ev.Kind), Member: ev.Member, InputSeq: ev.Seq, Code: string(ev.Code)}
	if ev.Epoch != 0 || ev.Kind == events.EvJoined || ev.Kind == events.EvEpoch {
		h.Epoch = &ev.Epoch
	}
	if r := ev.Result; r != nil {
		h.Command, h.RequestID, h.OK, h.Code = string(r.Kind), r.ID, &r.OK, string(r.Code)
		clear(r.Secret)
	}
	if ev.Kind == events.EvApplication && c.Plaintext {
		p := string(ev.Data)
		h.Plaintext = &p
	}
	clear(ev.Data)
	return h
}

func deadLetter(m jetstream.Msg) historyEntry {
	h := historyEntry{Kind: "dead_letter", Code: m.Headers().Get("Mls-Code")}
	h.InputSeq, _ = strconv.ParseUint(m.Headers().Get("Mls-Seq"), 10, 64)
	return h
}

// detail is the human form of what is particular to an entry.
func (h *historyEntry) detail() string {
	var d []string
	add := func(k, v string) {
		if v != "" {
			d = append(d, k+v)
		}
	}
	add("member=", h.Member)
	if h.Kind == "welcome" && h.Member == "" {
		add("", "for members hosted elsewhere")
	}
	add("from=", h.From)
	add("", h.WireFormat)
	add("", h.ContentType)
	if h.Epoch != nil {
		add("epoch=", strconv.FormatUint(*h.Epoch, 10))
	}
	add("cmd=", h.Command)
	add("id=", h.RequestID)
	if h.OK != nil {
		add("ok=", strconv.FormatBool(*h.OK))
	}
	add("code=", h.Code)
	if h.InputSeq != 0 {
		add("input=", strconv.FormatUint(h.InputSeq, 10))
	}
	if h.Plaintext != nil {
		add("plaintext=", strconv.Quote(*h.Plaintext))
	}
	return strings.Join(d, " ")
}
