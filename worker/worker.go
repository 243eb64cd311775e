package worker

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// before it redelivers an input (default 5 s): with PinnedTTL, how long
	// a partition waits after its worker died. A worker that takes longer
	// (a join of a very large group) tells the server it is still working.
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
	if cfg.AckWait <= 0 {
		cfg.AckWait = 5 * time.Second
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
	w := &Worker{cfg: cfg, js: cfg.JS, s: cfg.Subjects, log: cfg.Logger, m: newMetrics(cfg.Metrics),
		stores: map[string]*jetstore.Store{}, handles: map[handleKey]*list.Element{}}
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
			MaxAckPending:  1, // per-group order
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
	var ccs []jetstream.ConsumeContext
	for p := range w.cfg.Partitions {
		c, err := w.js.Consumer(ctx, events.DefaultLogStream, consumerName(p))
		if err != nil {
			return err
		}
		cc, err := c.Consume(func(m jetstream.Msg) { w.handle(context.WithoutCancel(ctx), m) },
			jetstream.PullPriorityGroup(priorityGroup), jetstream.PullMaxMessages(1), jetstream.PullExpiry(max(time.Second, w.cfg.PinnedTTL/2)))
		if err != nil {
			return err
		}
		ccs = append(ccs, cc)
	}
	w.ready.Store(true)
	go w.observe(ctx, w.cfg.ReportEvery)
	<-ctx.Done()
	w.ready.Store(false)
	for _, cc := range ccs {
		cc.Drain()
	}
	for _, cc := range ccs {
		<-cc.Closed()
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

// handle loads (or refreshes) a member's group handle.
func (w *Worker) handle(ctx context.Context, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		m.Term()
		return
	}
	if md.NumDelivered > 1 {
		w.m.redelivered.Inc()
	}
	kind := "invalid"
	if in, err := w.s.ParseInput(m.Subject()); err == nil {
		kind = kindLabel(in.Kind)
	}
	start := time.Now()
	// Keep the input ours while it is applied, however long that takes.
	working := make(chan struct{})
	go func() {
		t := time.NewTicker(w.cfg.AckWait / 2)
		defer t.Stop()
		for {
			select {
			case <-working:
				return
			case <-t.C:
				m.InProgress()
			}
		}
	}()
	err = w.apply(ctx, m.Subject(), md.Sequence.Stream, m.Headers(), m.Data())
	close(working)
	if err != nil {
		w.m.retried.Inc()
		// A failure of the worker or its storage, not of the input: try
		// again later.
		w.log.Warn("worker: input not applied; will be redelivered", "subject", m.Subject(), "seq", md.Sequence.Stream, "err", err)
		m.NakWithDelay(time.Second)
		return
	}
	if err := m.DoubleAck(ctx); err != nil {
		w.log.Warn("worker: ack lost; the input will be recognized when redelivered", "seq", md.Sequence.Stream, "err", err)
	}
	w.m.latency.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	w.m.applied.WithLabelValues(kind).Inc()
	w.m.done.Add(1)
}

func (w *Worker) group(ctx context.Context, member string, groupID []byte) (*engine.Group, error) {
	key := handleKey{member, string(groupID)}
	var h *engine.Group
	w.mu.Lock()
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
