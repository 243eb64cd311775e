package jetstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/storage"
)

// Errors of this package; storage's sentinels are returned where the
// storage contract names them.
var (
	// ErrOptions: Open was given invalid options, or a root key that
	// cannot be used.
	ErrOptions = errors.New("jetstore: invalid options")
	// ErrCorrupt: a stored record does not decode or does not open under
	// the keys held (a wrong root key, a value moved to another name, or
	// damage).
	ErrCorrupt = errors.New("jetstore: corrupt or foreign data")
	// ErrBucket: an existing bucket's stream is configured in a way that
	// would break the contract (a key bucket that denies deletion, a
	// snapshot bucket that keeps history).
	ErrBucket = errors.New("jetstore: bucket configured incompatibly")
)

// Defaults of Options.
const (
	DefaultSnapshotBucket = "mls_snapshot"
	DefaultKeyBucket      = "mls_keys"
	DefaultSweepInterval  = 30 * time.Second
	DefaultGrace          = 10 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultRotateEvery    = 6 * time.Hour
)

// Options configure Open.
type Options struct {
	// Member is the id of the hosted member whose state this Store keeps:
	// 1 to 64 bytes of [A-Za-z0-9_-]. It is part of every key, so many
	// members share the buckets without seeing each other's records.
	Member string
	// RootKey (RootKeySize bytes, from LoadRootKeyFile or LoadRootKeyEnv)
	// wraps the keys that seal key material. Required. Losing it loses
	// every secret in the store.
	RootKey []byte
	// SnapshotBucket holds the public records (DefaultSnapshotBucket);
	// KeyBucket holds key material, heads and wrapping keys
	// (DefaultKeyBucket).
	SnapshotBucket, KeyBucket string
	// Replicas of each bucket's stream when it is created: 1 on one server
	// (the default), 3 in a cluster.
	Replicas int
	// Storage of each bucket's stream when created: jetstream.FileStorage
	// (the default) or jetstream.MemoryStorage. How often the server
	// syncs files to disk is the server's setting (sync_interval, or
	// SyncAlways on natsrv.EmbeddedOptions).
	Storage jetstream.StorageType
	// SweepInterval is how often the background sweeper finishes
	// interrupted units and removes leftovers (DefaultSweepInterval);
	// negative disables it.
	SweepInterval time.Duration
	// RotateEvery is how old the current wrapping key generation may grow
	// before the sweeper starts a new one (DefaultRotateEvery); negative
	// disables rotation by the sweeper. Retired generations are erased
	// once every Store of the member has switched (2 x SweepInterval +
	// Grace).
	RotateEvery time.Duration
	// Grace is how long a unit's unfinished work or an unfinished creation
	// is left to its writer before others finish or clear it
	// (DefaultGrace).
	Grace time.Duration
	// Timeout bounds each request without a deadline of its own
	// (DefaultTimeout).
	Timeout time.Duration
	// StoreDir is the server's store directory when it is on this machine
	// (an embedded server): RawContents then reads its files.
	StoreDir string
	// Logger receives warnings about work left to the sweeper; nil
	// discards them. No secret is ever logged.
	Logger *slog.Logger

	// Commit chooses how a unit with key material reaches its commit point
	// (CommitAuto, the default, picks CommitIntent for a single-replica
	// file store and CommitBatch otherwise; see the package documentation).
	Commit CommitMode
	// Hooks are for tests only: crash injection and erasure auditing.
	Hooks *Hooks
}

// Hooks are test-only callbacks at the steps of a unit.
type Hooks struct {
	// Step is called before each step of a unit ("commit", "committed",
	// "published", "erase", "intent", "create-keys", "published-part"); a
	// non-nil error stops the unit there, as a crash of the process would.
	Step func(step string) error
}

// CommitMode is how a unit that writes key material is committed.
type CommitMode uint8

const (
	// CommitAuto picks CommitIntent when the key bucket has one replica on
	// file storage, CommitBatch otherwise.
	CommitAuto CommitMode = iota
	// CommitBatch writes the unit's key material and the new head in one
	// atomic batch. On a single-replica file store the server stages
	// every atomic batch in a file store of its own, with fsyncs: about
	// 5 ms per unit on a fast local disk.
	CommitBatch
	// CommitIntent marks the head with the unit's intent, writes the key
	// material, and commits with the head's next revision: three
	// round trips of about 0.1 ms each; an intent found unfinished after
	// Options.Grace is rolled back.
	CommitIntent
)

// Store is a storage.Backend on two JetStream KV buckets for one member.
type Store struct {
	js   jetstream.JetStream
	nc   *nats.Conn
	o    Options
	l    layout
	ring *keyring
	snap jetstream.Stream
	keys jetstream.Stream
	log  *slog.Logger

	mu    sync.Mutex
	locks map[storage.Scope]*scopeLock
	cache map[storage.Scope]cached

	stopSweep context.CancelFunc
	swept     sync.WaitGroup
	stats     Stats
	maxSeq    atomic.Uint64
}

// cached is what this Store last knew of a scope's head and marker, to skip
// re-reading them when nothing else changed the scope.
type cached struct {
	h    *head
	seq  uint64 // sequence of the head record
	done bool   // the head's journal has been finished
	// km maps the subject of each key-material record of the group that
	// is on the server to its sequence, complete as of the head at seq
	// (from a Load and this Store's own units since), or is nil when not
	// known. It lets erasure go straight to the sequences.
	km map[string]uint64
}

type scopeLock struct {
	ch   chan struct{}
	refs int
}

var _ storage.Backend = (*Store)(nil)
var _ storage.Inspector = (*Store)(nil)

// Open binds to (or creates) the buckets and the member's wrapping keys.
// Close stops its sweeper; it does not close js's connection.
func Open(ctx context.Context, js jetstream.JetStream, o Options) (*Store, error) {
	if o.SnapshotBucket == "" {
		o.SnapshotBucket = DefaultSnapshotBucket
	}
	if o.KeyBucket == "" {
		o.KeyBucket = DefaultKeyBucket
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.RotateEvery == 0 {
		o.RotateEvery = DefaultRotateEvery
	}
	if err := validMember(o.Member); err != nil {
		return nil, err
	}
	for _, b := range []string{o.SnapshotBucket, o.KeyBucket} {
		if err := validBucket(b); err != nil {
			return nil, err
		}
	}
	if o.SnapshotBucket == o.KeyBucket {
		return nil, fmt.Errorf("%w: the snapshot and key buckets must differ", ErrOptions)
	}
	if len(o.RootKey) != RootKeySize {
		return nil, fmt.Errorf("%w: RootKey must be %d bytes", ErrOptions, RootKeySize)
	}
	if js == nil {
		return nil, fmt.Errorf("%w: nil JetStream", ErrOptions)
	}
	s := &Store{js: js, nc: js.Conn(), o: o, l: newLayout(o.SnapshotBucket, o.KeyBucket, o.Member),
		locks: map[storage.Scope]*scopeLock{}, cache: map[storage.Scope]cached{}, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ring, err := newKeyring(o.RootKey, o.Member)
	if err != nil {
		return nil, err
	}
	s.ring = ring
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if s.snap, err = s.ensureStream(ctx, s.l.snap, "$KV."+o.SnapshotBucket+".>", false); err != nil {
		return nil, err
	}
	if s.keys, err = s.ensureStream(ctx, s.l.keys, "$KV."+o.KeyBucket+".>", true); err != nil {
		return nil, err
	}
	if s.o.Commit == CommitAuto {
		s.o.Commit = CommitBatch
		if cfg := s.keys.CachedInfo().Config; cfg.Replicas <= 1 && cfg.Storage == jetstream.FileStorage {
			s.o.Commit = CommitIntent
		}
	}
	if err := s.loadWrappingKeys(ctx); err != nil {
		return nil, err
	}
	if o.SweepInterval > 0 {
		sctx, stop := context.WithCancel(context.Background())
		s.stopSweep = stop
		s.swept.Add(1)
		go s.sweeper(sctx)
	}
	return s, nil
}

// Close stops the background sweeper and waits for it.
func (s *Store) Close() error {
	if s.stopSweep != nil {
		s.stopSweep()
		s.swept.Wait()
	}
	return nil
}

// ensureStream creates a bucket's stream or checks the existing one.
//
// Both are KV buckets by their subjects ($KV.<bucket>.>) and history 1, so
// `nats kv` tools read them, but jetstore creates the streams itself
// because KeyValueConfig cannot allow atomic batches, and a key bucket made
// by CreateKeyValue denies deletion, which makes SecureDeleteMsg (the only
// erasure JetStream has) impossible forever.
func (s *Store) ensureStream(ctx context.Context, name, subject string, keyBucket bool) (jetstream.Stream, error) {
	cfg := jetstream.StreamConfig{
		Name:               name,
		Subjects:           []string{subject},
		MaxMsgsPerSubject:  1,
		Discard:            jetstream.DiscardNew,
		Storage:            s.o.Storage,
		Replicas:           s.o.Replicas,
		AllowRollup:        true,
		DenyDelete:         false,
		DenyPurge:          false,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Duplicates:         2 * time.Minute,
	}
	if keyBucket {
		cfg.Description = "mlsengine key material, sealed; erased by sequence when it dies"
	} else {
		cfg.Description = "mlsengine public group state snapshots"
	}
	st, err := s.js.CreateStream(ctx, cfg)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("jetstore: creating stream %s: %w", name, err)
	}
	st, err = s.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("jetstore: binding stream %s: %w", name, err)
	}
	have := st.CachedInfo().Config
	switch {
	case have.DenyDelete:
		return nil, fmt.Errorf("%w: stream %s denies deletion, so dead key material could never be erased (it was probably made with CreateKeyValue; recreate it)", ErrBucket, name)
	case have.MaxMsgsPerSubject != 1:
		return nil, fmt.Errorf("%w: stream %s keeps %d revisions per key; jetstore needs history 1", ErrBucket, name, have.MaxMsgsPerSubject)
	case !have.AllowDirect:
		return nil, fmt.Errorf("%w: stream %s does not allow direct gets, which batch reads need", ErrBucket, name)
	}
	if !have.AllowAtomicPublish {
		have.AllowAtomicPublish = true
		if st, err = s.js.UpdateStream(ctx, have); err != nil {
			return nil, fmt.Errorf("jetstore: enabling atomic publish on %s: %w", name, err)
		}
	}
	return st, nil
}

// bound gives ctx the default timeout if it has no deadline.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.o.Timeout)
}

// lock serializes this Store's writers of one scope; other processes are
// fenced by the head's compare-and-set.
func (s *Store) lock(ctx context.Context, sc storage.Scope) (func(), error) {
	s.mu.Lock()
	l := s.locks[sc]
	if l == nil {
		l = &scopeLock{ch: make(chan struct{}, 1)}
		s.locks[sc] = l
	}
	l.refs++
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(s.locks, sc)
		}
		s.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

func (s *Store) getCache(sc storage.Scope) (cached, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[sc]
	return c, ok
}

func (s *Store) setCache(sc storage.Scope, c cached) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) > 4096 {
		clear(s.cache) // a bound, not an LRU: misses cost one read
	}
	s.cache[sc] = c
}

func (s *Store) dropCache(sc storage.Scope) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, sc)
}

// step calls the test hook for a named step of a unit.
func (s *Store) step(name string) error {
	if s.o.Hooks != nil && s.o.Hooks.Step != nil {
		return s.o.Hooks.Step(name)
	}
	return nil
}

// ---- requests ----

// readHead reads a scope's head: nil with seq 0 if there is none.
func (s *Store) readHead(ctx context.Context, sc storage.Scope) (*head, uint64, error) {
	s.stats.add(&s.stats.Requests, 1)
	m, err := s.keys.GetLastMsgForSubject(ctx, s.l.headSubject(sc))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, s.readErr(ctx, err)
	}
	h, err := decodeHead(m.Data)
	if err != nil {
		return nil, 0, err
	}
	return h, m.Sequence, nil
}

// scan reads every message of a stream whose subject matches filter, in
// sequence order, paging through batch direct gets. Each page is isolated
// from writes on the server; across pages the caller checks consistency.
func (s *Store) scan(ctx context.Context, stream, filter string) ([]*jetstream.RawStreamMsg, error) {
	var out []*jetstream.RawStreamMsg
	seq := uint64(1)
	for {
		s.stats.add(&s.stats.Requests, 1)
		ms, more, err := s.directBatch(ctx, stream, directReq{Seq: seq, NextFor: filter, Batch: scanPage})
		if err != nil {
			return nil, s.readErr(ctx, err)
		}
		out = append(out, ms...)
		if len(ms) == 0 || !more {
			return out, nil
		}
		seq = ms[len(ms)-1].Sequence + 1
	}
}

// scanPage is how many messages one batch get asks for.
const scanPage = 1000

// getLast reads the last message of each subject (at most 1024) in one
// request; subjects with none are left out.
func (s *Store) getLast(ctx context.Context, stream string, subjects []string) ([]*jetstream.RawStreamMsg, error) {
	if len(subjects) == 0 {
		return nil, nil
	}
	s.stats.add(&s.stats.Requests, 1)
	ms, _, err := s.directBatch(ctx, stream, directReq{MultiLastFor: subjects})
	if err != nil {
		return nil, s.readErr(ctx, err)
	}
	return ms, nil
}

func (s *Store) readErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("jetstore: %w", ctx.Err())
	}
	return fmt.Errorf("jetstore: %w", err)
}

// secureDelete erases one message by sequence (STREAM.MSG.DELETE with
// erasure: the server overwrites the record and rewrites its block). A
// message already gone is not an error: erasure is idempotent and may race
// with a sweeper. The request is made directly because nats.go's
// SecureDeleteMsg folds the server's error code into text.
func (s *Store) secureDelete(ctx context.Context, seq uint64) error {
	s.stats.add(&s.stats.Requests, 1)
	s.stats.add(&s.stats.Erased, 1)
	req, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NoErase bool   `json:"no_erase"`
	}{Seq: seq})
	resp, err := s.nc.RequestWithContext(ctx, s.apiPrefix()+"STREAM.MSG.DELETE."+s.l.keys, req)
	if err != nil {
		return s.readErr(ctx, err)
	}
	var r struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return fmt.Errorf("jetstore: erasing sequence %d: undecodable reply", seq)
	}
	switch {
	case r.Success:
		return nil
	case r.Error != nil && (r.Error.ErrorCode == 10043 || r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound || r.Error.ErrorCode == 10057):
		// 10043 (sequence not found) or 10057 (no message found, for the
		// stream's first sequence): it was erased before. 10057 also means
		// "delete not permitted", which Open rules out by refusing a key
		// bucket that denies deletion.
		return nil
	case r.Error != nil:
		return fmt.Errorf("jetstore: erasing sequence %d: %w", seq, r.Error)
	}
	return fmt.Errorf("jetstore: erasing sequence %d: no success reported", seq)
}

func (s *Store) apiPrefix() string {
	o := s.js.Options()
	switch {
	case o.APIPrefix != "":
		if o.APIPrefix[len(o.APIPrefix)-1] != '.' {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	}
	return "$JS.API."
}

func isCASFailure(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// isUnknown reports whether a publish failed in a way that leaves its
// outcome unknown: the request may have reached the server.
func isUnknown(err error) bool {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return false
	}
	return true
}

func seqHeader(seq uint64) string { return strconv.FormatUint(seq, 10) }
