package worker

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/jetstore"
)

// Config configures a Worker.
type Config struct {
	// JS is the JetStream context of the worker's connection.
	JS jetstream.JetStream
	// Subjects names the contract's subjects (default prefix "mls").
	Subjects events.Subjects
	// Partitions of the log stream (events.DefaultPartitions). All workers
	// of a deployment must agree; it is fixed when the stream is created.
	Partitions int
	// Replicas and Storage of the streams and buckets the worker creates.
	Replicas int
	Storage  jetstream.StorageType
	// Store is the template of every hosted member's jetstore.Options
	// (RootKey required; Member is set per member).
	Store jetstore.Options
	// Engine is the template of the members' engine configuration.
	Engine engine.Config
	// PinnedTTL is how long a partition stays pinned to a worker that
	// stopped pulling (default 5 s, at least 2 s, since a worker renews its
	// pull every PinnedTTL/2 and at most every second): the failover time.
	PinnedTTL time.Duration
	// AckWait is how long the server waits for a worker's acknowledgement
	// before it redelivers an input: at most (and by default) PinnedTTL/4,
	// so that a dead worker's inputs are due again before its partitions
	// move, and the next worker gets them before anything newer. A worker
	// that takes longer (a join of a very large group) tells the server it
	// is still working on its whole batch.
	AckWait time.Duration
	// Logger receives the worker's log; never a secret.
	Logger *slog.Logger
	// Metrics, if set, receives the worker's Prometheus metrics.
	Metrics prometheus.Registerer
	// FutureWindow is how long a message of an epoch its member has not
	// reached waits for it (set aside) before it is rejected (default
	// 1 minute).
	FutureWindow time.Duration
	// ReportEvery is how often the worker logs its throughput and reads
	// its partitions' lag (default 10 s).
	ReportEvery time.Duration
	// MaxHandles bounds the group handles kept in memory between inputs
	// (default 4096); the least recently used is dropped, and loaded again
	// from jetstore when its group has an input.
	MaxHandles int
	// Batch is how many inputs of a partition may be applied before their
	// changes are stored and they are acknowledged (default 1: each input
	// is stored and acknowledged on its own). Application messages read
	// in a batch are stored together, one unit per group handle
	// (engine.Group.ProcessDeferred): the ratchet keys used and deleted
	// within the batch never reach storage, and a batch costs one erasure
	// per ratchet instead of one per message.
	//
	// Above 1 is experimental: a storage outage longer than AckWait can
	// reorder a partition's inputs. The client has inputs buffered behind
	// the held batch; their AckWait runs out first, and the server hands
	// them out again before the batch's (TestStepBack with a batch of 64
	// fails so). With 1, the server hands out nothing of a partition while
	// its one input is unacknowledged.
	Batch int
	// FlushDelay is how long a batch waits for more inputs before it is
	// stored and acknowledged (default 2 ms): the latency a lone message
	// pays for batching.
	FlushDelay time.Duration
}

// Worker applies the log to hosted members.
type Worker struct {
	cfg     Config
	js      jetstream.JetStream
	s       events.Subjects
	reg     *Registry
	parking jetstream.KeyValue
	log     *slog.Logger
	m       *metrics
	ready   atomic.Bool

	mu      sync.Mutex
	stores  map[string]*jetstore.Store
	handles map[handleKey]*list.Element // of *cachedHandle, most recent first
	lru     list.List
	// held are the handles with changes that wait for their batch's
	// flush: every input uses them until then, whatever the cache holds.
	held map[handleKey]*engine.Group
}

// batch is a partition's inputs applied but not yet acknowledged, and the
// group handles whose changes wait to be stored before they are. A
// partition's inputs are handled one at a time, under mu.
type batch struct {
	mu    sync.Mutex
	msgs  []applied
	held  []handleKey
	timer *time.Timer
	// stop is closed when the worker stops: a batch retried after a
	// failure is then left to be redelivered.
	stop <-chan struct{}
	// waiting is a copy of msgs for keepAlive, which cannot take mu while
	// an input is applied.
	waiting atomic.Pointer[[]applied]
	// consume starts consuming the partition into cc; stepped is set while
	// the worker has stepped back from it (see stepBack).
	consume func() error
	cc      jetstream.ConsumeContext
	stepped bool
}

// keepAlive tells the server, every AckWait/3, that b's inputs are still
// being worked on, so that none is redelivered while the batch waits for
// a long apply, a retry or its flush.
func (w *Worker) keepAlive(b *batch) {
	t := time.NewTicker(w.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			if msgs := b.waiting.Load(); msgs != nil {
				for _, a := range *msgs {
					a.m.InProgress()
				}
			}
		}
	}
}

// note publishes b.msgs to keepAlive; b.mu is held.
func (b *batch) note() {
	msgs := slices.Clone(b.msgs)
	b.waiting.Store(&msgs)
}

// applied is an input applied and waiting for its acknowledgement.
type applied struct {
	m     jetstream.Msg
	seq   uint64
	kind  string
	start time.Time
}

type cachedHandle struct {
	key handleKey
	h   *engine.Group
}

type handleKey struct {
	member string
	group  string
}

// consumerName is a partition's durable consumer; priorityGroup the
// group its workers pull in.
const priorityGroup = "workers"

func consumerName(p int) string { return "mls-p" + strconv.Itoa(p) }

// New creates or binds the streams, the registry and the partitions'
// consumers.
func New(ctx context.Context, cfg Config) (*Worker, error) {
	if cfg.JS == nil {
		return nil, errors.New("worker: nil JetStream")
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = events.DefaultPartitions
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.PinnedTTL <= 0 {
		cfg.PinnedTTL = 5 * time.Second
	}
	cfg.PinnedTTL = max(cfg.PinnedTTL, 2*time.Second)
	// A dead worker's unacknowledged inputs must be due for redelivery
	// before its partitions can move (PinnedTTL after its last pull, which
	// it renews every PinnedTTL/2): the server then hands them to the next
	// worker before anything newer, and the partition's order holds.
	if cfg.AckWait <= 0 || cfg.AckWait > cfg.PinnedTTL/4 {
		cfg.AckWait = cfg.PinnedTTL / 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FutureWindow <= 0 {
		cfg.FutureWindow = time.Minute
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = 10 * time.Second
	}
	if cfg.MaxHandles <= 0 {
		cfg.MaxHandles = 4096
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1
	}
	if cfg.FlushDelay <= 0 {
		cfg.FlushDelay = 2 * time.Millisecond
	}
	w := &Worker{cfg: cfg, js: cfg.JS, s: cfg.Subjects, log: cfg.Logger, m: newMetrics(cfg.Metrics),
		stores: map[string]*jetstore.Store{}, handles: map[handleKey]*list.Element{}, held: map[handleKey]*engine.Group{}}
	if _, err := w.js.CreateOrUpdateStream(ctx, w.s.LogStream("", cfg.Partitions, cfg.Replicas, cfg.Storage)); err != nil {
		return nil, fmt.Errorf("worker: log stream: %w", err)
	}
	if _, err := w.js.CreateOrUpdateStream(ctx, w.s.EventsStream("", 0, cfg.Replicas, cfg.Storage)); err != nil {
		return nil, fmt.Errorf("worker: events stream: %w", err)
	}
	var err error
	if w.reg, err = openRegistry(ctx, w.js, "", cfg.Replicas, cfg.Storage); err != nil {
		return nil, err
	}
	if w.parking, err = openParking(ctx, w.js, cfg.Replicas, cfg.Storage); err != nil {
		return nil, err
	}
	for p := range cfg.Partitions {
		if _, err := w.js.CreateOrUpdateConsumer(ctx, events.DefaultLogStream, jetstream.ConsumerConfig{
			Durable:        consumerName(p),
			FilterSubject:  w.s.PartitionFilter(p),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        cfg.AckWait,
			MaxAckPending:  cfg.Batch, // one worker applies them in order
			MaxDeliver:     -1,
			PriorityPolicy: jetstream.PriorityPolicyPinned,
			PriorityGroups: []string{priorityGroup},
			PinnedTTL:      cfg.PinnedTTL,
		}); err != nil {
			return nil, fmt.Errorf("worker: consumer of partition %d: %w", p, err)
		}
	}
	return w, nil
}

// Run consumes every partition until ctx is done, then drains: an input
// being applied is finished and acknowledged.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.reg.watch(ctx); err != nil {
		return fmt.Errorf("worker: watching the registry: %w", err)
	}
	batches := make([]*batch, w.cfg.Partitions)
	for p := range w.cfg.Partitions {
		c, err := w.js.Consumer(ctx, events.DefaultLogStream, consumerName(p))
		if err != nil {
			return err
		}
		b := &batch{stop: ctx.Done()}
		b.consume = func() error {
			cc, err := c.Consume(func(m jetstream.Msg) { w.handle(context.WithoutCancel(ctx), b, m) },
				jetstream.PullPriorityGroup(priorityGroup), jetstream.PullMaxMessages(w.cfg.Batch), jetstream.PullExpiry(max(time.Second, w.cfg.PinnedTTL/2)))
			if err == nil {
				b.cc = cc
			}
			return err
		}
		batches[p] = b
		go w.keepAlive(b)
		if err := b.consume(); err != nil {
			return err
		}
	}
	w.ready.Store(true)
	go w.observe(ctx, w.cfg.ReportEvery)
	<-ctx.Done()
	w.ready.Store(false)
	var ccs []jetstream.ConsumeContext
	for _, b := range batches {
		b.mu.Lock()
		ccs = append(ccs, b.cc)
		b.mu.Unlock()
	}
	for _, cc := range ccs {
		cc.Drain()
	}
	for _, cc := range ccs {
		<-cc.Closed()
	}
	for _, b := range batches {
		b.mu.Lock()
		if len(b.msgs) > 0 && w.storeBatch(context.WithoutCancel(ctx), b) == nil {
			w.ack(b)
		}
		b.mu.Unlock()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.stores {
		s.Close()
	}
	return nil
}

// Ready reports whether the worker is consuming its partitions and its
// NATS connection is up: a readiness probe.
func (w *Worker) Ready() bool {
	return w.ready.Load() && w.js.Conn().IsConnected()
}

// store returns the member's jetstore.
func (w *Worker) store(ctx context.Context, member string) (*jetstore.Store, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.stores[member]; s != nil {
		return s, nil
	}
	o := w.cfg.Store
	o.Member = member
	s, err := jetstore.Open(ctx, w.js, o)
	if err != nil {
		return nil, err
	}
	w.stores[member] = s
	return s, nil
}

// handle applies one input of a partition and adds it to the partition's
// batch, which is stored and acknowledged when full or after FlushDelay.
func (w *Worker) handle(ctx context.Context, b *batch, m jetstream.Msg) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stepped {
		return // left unacknowledged: due again after AckWait, in order
	}
	md, err := m.Metadata()
	if err != nil {
		m.Term()
		return
	}
	if md.NumDelivered > 1 {
		w.m.redelivered.Inc()
	}
	a := applied{m: m, seq: md.Sequence.Stream, kind: "invalid", start: time.Now()}
	if in, err := w.s.ParseInput(m.Subject()); err == nil {
		a.kind = kindLabel(in.Kind)
	}
	if err := w.applyOne(ctx, b, a); err != nil {
		// A failure of the worker or its storage, not of the input.
		w.log.Warn("worker: input not applied; retrying its batch", "subject", m.Subject(), "seq", a.seq, "err", err)
		w.retry(ctx, b, &a)
		return
	}
	b.msgs = append(b.msgs, a)
	b.note()
	switch {
	case len(b.msgs) >= w.cfg.Batch:
		w.flush(ctx, b)
	case b.timer == nil:
		b.timer = time.AfterFunc(w.cfg.FlushDelay, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			w.flush(ctx, b)
		})
	}
}

// applyOne applies an input, telling the server it is still being worked
// on while that takes long.
func (w *Worker) applyOne(ctx context.Context, b *batch, a applied) error {
	working := make(chan struct{})
	defer close(working)
	go func() {
		t := time.NewTicker(w.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-working:
				return
			case <-t.C:
				a.m.InProgress()
			}
		}
	}()
	return w.apply(ctx, b, a.m.Subject(), a.seq, a.m.Headers(), a.m.Data())
}

// hold records that a group handle has changes waiting for b's flush.
func (w *Worker) hold(b *batch, member string, groupID []byte, h *engine.Group) {
	key := handleKey{member, string(groupID)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.held[key]; !ok {
		w.held[key] = h
		b.held = append(b.held, key)
	}
}

// flush stores b's changes and acknowledges its inputs; b.mu is held.
func (w *Worker) flush(ctx context.Context, b *batch) {
	if len(b.msgs) == 0 {
		b.timer = nil // fired with nothing left: the next input arms a new one
		return
	}
	if err := w.storeBatch(ctx, b); err != nil {
		w.log.Warn("worker: a batch's changes not stored; retrying it", "err", err)
		w.retry(ctx, b, nil)
		return
	}
	w.ack(b)
}

// storeBatch stores the changes b's handles hold; b.mu is held.
func (w *Worker) storeBatch(ctx context.Context, b *batch) error {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	for _, key := range b.held {
		w.mu.Lock()
		h := w.held[key]
		w.mu.Unlock()
		if h == nil {
			continue // forgotten: its changes stored or dropped
		}
		if err := h.Flush(ctx); err != nil {
			return err
		}
		w.mu.Lock()
		delete(w.held, key)
		w.mu.Unlock()
	}
	b.held = b.held[:0]
	return nil
}

// ack acknowledges b's inputs, whose changes are stored; b.mu is held.
func (w *Worker) ack(b *batch) {
	for _, a := range b.msgs {
		// A lost acknowledgement makes a redelivery, which the stored
		// cursor recognizes.
		a.m.Ack()
		w.m.latency.WithLabelValues(a.kind).Observe(time.Since(a.start).Seconds())
		w.m.applied.WithLabelValues(a.kind).Inc()
		w.m.done.Add(1)
	}
	b.msgs = b.msgs[:0]
	b.note()
}

// retry applies b's inputs, and failed if not nil, again from the stored
// state, in order, until they are applied and stored: the changes b's
// handles held are dropped first. The partition waits meanwhile, since no
// later input may be applied before an earlier one; the inputs stay this
// worker's (InProgress). It tries for PinnedTTL/4 at most, since a worker
// that does not pull loses its partitions; then it steps back. If the
// worker stops, the inputs are left unacknowledged for the server to
// redeliver. b.mu is held.
func (w *Worker) retry(ctx context.Context, b *batch, failed *applied) {
	msgs := slices.Clone(b.msgs)
	if failed != nil {
		msgs = append(msgs, *failed)
	}
	deadline := time.Now().Add(w.cfg.PinnedTTL / 4)
	backoff := 50 * time.Millisecond
	for {
		w.drop(b)
		w.m.retried.Add(float64(len(msgs)))
		for _, a := range msgs {
			a.m.InProgress()
		}
		if time.Now().Add(backoff).After(deadline) {
			w.stepBack(b)
			return
		}
		select {
		case <-b.stop:
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		var err error
		for _, a := range msgs {
			if err = w.applyOne(ctx, b, a); err != nil {
				break
			}
			b.msgs = append(b.msgs, a)
			b.note()
		}
		if err == nil {
			if err = w.storeBatch(ctx, b); err == nil {
				w.ack(b)
				return
			}
		}
		w.log.Warn("worker: a batch failed again", "inputs", len(msgs), "err", err)
	}
}

// stepBack stops consuming b's partition for a while, leaving its inputs
// unacknowledged (their changes dropped) and everything the client had
// buffered after them: they are due again after AckWait, and the server
// hands out inputs due again before newer ones, in order, to whichever
// worker pulls next, this one (after 2 x AckWait) or another. b.mu is held.
func (w *Worker) stepBack(b *batch) {
	w.log.Warn("worker: stepping back from a partition; its inputs will be redelivered", "retry_in", 2*w.cfg.AckWait)
	w.m.stepBacks.Inc()
	b.stepped = true
	cc := b.cc
	go cc.Stop()
	time.AfterFunc(2*w.cfg.AckWait, func() {
		// Its handler may be waiting for b.mu: wait for it to end first.
		<-cc.Closed()
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-b.stop:
			return
		default:
		}
		b.stepped = false
		for b.consume() != nil {
			select {
			case <-b.stop:
				return
			case <-time.After(w.cfg.AckWait):
			}
		}
	})
}

// drop forgets the handles whose changes b held, and b's inputs; b.mu is
// held.
func (w *Worker) drop(b *batch) {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	w.mu.Lock()
	for _, key := range b.held {
		delete(w.held, key)
		w.forgetLocked(key)
	}
	w.mu.Unlock()
	b.held = b.held[:0]
	b.msgs = b.msgs[:0]
	b.note()
}

func (w *Worker) group(ctx context.Context, member string, groupID []byte) (*engine.Group, error) {
	key := handleKey{member, string(groupID)}
	var h *engine.Group
	w.mu.Lock()
	if h := w.held[key]; h != nil {
		// Its batch's changes are not stored yet: it is ahead of the
		// stored state, and this worker the partition's only writer.
		w.mu.Unlock()
		return h, nil
	}
	if e := w.handles[key]; e != nil {
		w.lru.MoveToFront(e)
		h = e.Value.(*cachedHandle).h
	}
	w.mu.Unlock()
	if h != nil {
		if _, err := h.Refresh(ctx); err == nil {
			return h, nil
		}
	}
	s, err := w.store(ctx, member)
	if err != nil {
		return nil, err
	}
	cfg := w.cfg.Engine
	h, err = engine.LoadGroup(ctx, s, groupID, &cfg)
	if err != nil {
		return nil, err
	}
	w.m.loads.Inc()
	w.mu.Lock()
	if e := w.handles[key]; e != nil {
		w.lru.Remove(e)
	}
	w.handles[key] = w.lru.PushFront(&cachedHandle{key, h})
	for w.lru.Len() > w.cfg.MaxHandles {
		old := w.lru.Remove(w.lru.Back()).(*cachedHandle)
		delete(w.handles, old.key)
	}
	w.m.handles.Set(float64(w.lru.Len()))
	w.mu.Unlock()
	return h, nil
}

func (w *Worker) forget(member string, groupID []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := handleKey{member, string(groupID)}
	delete(w.held, key)
	w.forgetLocked(key)
}

// forgetLocked drops a handle from the cache; w.mu is held.
func (w *Worker) forgetLocked(key handleKey) {
	if e := w.handles[key]; e != nil {
		w.lru.Remove(e)
		delete(w.handles, key)
		w.m.handles.Set(float64(w.lru.Len()))
	}
}

// publish publishes one output; a duplicate (same message id within the
// stream's window) is not an error.
func (w *Worker) publish(ctx context.Context, o output) error {
	m := nats.NewMsg(o.Subject)
	m.Data = o.Data
	if o.ID != "" {
		m.Header.Set(jetstream.MsgIDHeader, o.ID)
	}
	if o.From != "" {
		m.Header.Set(fromHeader, o.From)
	}
	if o.FirstOnSubject {
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	}
	_, err := w.js.PublishMsg(ctx, m)
	return err
}

// fromHeader names the hosted member that published an MLS message, so
// that it is not delivered back to its sender.
const fromHeader = "Mls-From"

// event publishes an event for a member.
func (w *Worker) event(ctx context.Context, e *events.Event, id string) error {
	if e.Kind == events.EvRejected {
		w.m.rejected.WithLabelValues(string(e.Code)).Inc()
	}
	b, err := events.Marshal(e)
	if err != nil {
		return err
	}
	return w.publish(ctx, output{Subject: w.s.Event(e.Member, e.Group, e.Kind), Data: b, ID: id})
}
