package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Client drives hosted members through the subjects: it sends commands
// and waits for their results and other events. Tools (mlsadmin demo),
// tests and applications use it; it holds no MLS state.
type Client struct {
	js   jetstream.JetStream
	s    Subjects
	cc   jetstream.ConsumeContext
	mu   sync.Mutex
	subs []*waiter
	seq  atomic.Uint64
	id   string
	errc chan error
}

type waiter struct {
	match func(*Event) bool
	ch    chan *Event
}

// ErrClient: the client could not send a command or read events.
var ErrClient = errors.New("events: client")

// NewClient starts reading the events published from now on.
func NewClient(ctx context.Context, js jetstream.JetStream, s Subjects, eventsStream string) (*Client, error) {
	if eventsStream == "" {
		eventsStream = DefaultEventsStream
	}
	c := &Client{js: js, s: s, id: nuid.Next()}
	cons, err := js.OrderedConsumer(ctx, eventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.p() + ".ev.>"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("%w: reading events: %w", ErrClient, err)
	}
	c.cc, err = cons.Consume(func(m jetstream.Msg) {
		e, err := DecodeEvent(m.Data())
		if err != nil {
			return // not an event of this contract version
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, w := range c.subs {
			if w.match(e) {
				select {
				case w.ch <- e:
				default: // a waiter that does not keep up misses events
				}
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("%w: reading events: %w", ErrClient, err)
	}
	return c, nil
}

// Close stops reading events.
func (c *Client) Close() { c.cc.Stop() }

// Subscribe delivers the events that match to the returned channel (of
// the given capacity) until cancel is called.
func (c *Client) Subscribe(match func(*Event) bool, capacity int) (events <-chan *Event, cancel func()) {
	w := &waiter{match: match, ch: make(chan *Event, capacity)}
	c.mu.Lock()
	c.subs = append(c.subs, w)
	c.mu.Unlock()
	return w.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, x := range c.subs {
			if x == w {
				c.subs = append(c.subs[:i], c.subs[i+1:]...)
				return
			}
		}
	}
}

// Wait returns the first event from now on that matches.
func (c *Client) Wait(ctx context.Context, match func(*Event) bool) (*Event, error) {
	ch, cancel := c.Subscribe(match, 1)
	defer cancel()
	select {
	case e := <-ch:
		return e, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for an event: %w", ErrClient, ctx.Err())
	}
}

// Send publishes a command (its ID is set if empty) without waiting.
func (c *Client) Send(ctx context.Context, cmd *Command) error {
	if cmd.ID == "" {
		cmd.ID = fmt.Sprintf("%s-%d", c.id, c.seq.Add(1))
	}
	b, err := Marshal(cmd)
	if err != nil {
		return err
	}
	if err := cmd.Check(); err != nil {
		return err
	}
	if _, err := c.js.Publish(ctx, c.s.Command(cmd.Member, cmd.Group), b, jetstream.WithMsgID("cmd-"+cmd.Member+"-"+cmd.ID)); err != nil {
		return fmt.Errorf("%w: sending %s: %w", ErrClient, cmd.Kind, err)
	}
	return nil
}

// Do sends a command and returns its result.
func (c *Client) Do(ctx context.Context, cmd *Command) (*Result, error) {
	if cmd.ID == "" {
		cmd.ID = fmt.Sprintf("%s-%d", c.id, c.seq.Add(1))
	}
	ch, cancel := c.Subscribe(func(e *Event) bool {
		return e.Kind == EvResult && e.Member == cmd.Member && e.Result.ID == cmd.ID
	}, 1)
	defer cancel()
	if err := c.Send(ctx, cmd); err != nil {
		return nil, err
	}
	select {
	case e := <-ch:
		return e.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the result of %s: %w", ErrClient, cmd.Kind, ctx.Err())
	}
}

// Publish publishes an MLS message (RFC 9420 encoding) of an outside
// client to a group.
func (c *Client) Publish(ctx context.Context, groupID, msg []byte) error {
	_, err := c.js.Publish(ctx, c.s.Msg(groupID), msg)
	return err
}

// PublishWelcome publishes a Welcome for a hosted member.
func (c *Client) PublishWelcome(ctx context.Context, groupID []byte, member string, msg []byte) error {
	_, err := c.js.Publish(ctx, c.s.Welcome(groupID, member), msg)
	return err
}

// LogMsg is an input read from the log stream.
type LogMsg struct {
	Input
	Seq  uint64
	From string // the hosted member that published it, if one did
	Data []byte
}

// Log delivers the log's inputs about a group from now on (as an outside
// client of the group reads them) until cancel is called.
func (c *Client) Log(ctx context.Context, groupID []byte, logStream string) (msgs <-chan LogMsg, cancel func(), err error) {
	if logStream == "" {
		logStream = DefaultLogStream
	}
	cons, err := c.js.OrderedConsumer(ctx, logStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{c.s.p() + ".p.*." + GroupToken(groupID) + ".>"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading the log: %w", ErrClient, err)
	}
	ch := make(chan LogMsg, 1024)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		in, err := c.s.ParseInput(m.Subject())
		if err != nil {
			return
		}
		md, _ := m.Metadata()
		lm := LogMsg{Input: in, From: m.Headers().Get("Mls-From"), Data: m.Data()}
		if md != nil {
			lm.Seq = md.Sequence.Stream
		}
		select {
		case ch <- lm:
		default:
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: reading the log: %w", ErrClient, err)
	}
	return ch, cc.Stop, nil
}
