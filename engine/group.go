package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

// Group is a handle on one member's state of one MLS group, persisted in a
// storage.Backend. Its methods are safe for concurrent use and serialized.
type Group struct {
	mu      sync.Mutex
	store   storage.Backend
	cfg     Config
	signer  *ciphersuite.SigningKey
	meta    meta
	id      []byte
	version uint64
	log     *slog.Logger
	opc     *opContext // the context of the operation in progress, for PSK lookups
	// deferred: an operation left changes to be stored with the next one
	// (processing a commit), so the change log is not empty between
	// operations.
	deferred bool
	// unresolved is the operation whose unit's outcome is unknown, with
	// its result; confirmed is one whose unit was then found stored, with
	// its result kept for the caller's retry of the call (resolveLocked).
	unresolved, confirmed *unresolved

	g   *group.Group // nil once the handle is broken or deleted
	err error        // why g is nil

	// cursor is the stored cursor; nextCursor the one to store with the
	// next unit, if cursorPending.
	cursor, nextCursor []byte
	cursorPending      bool
}

// NewGroup creates a group with the caller as its only member (RFC 9420
// §11) in cfg.Suite, and stores it before returning. cfg.GroupID, if set,
// must not name a stored group (ErrGroupExists).
func NewGroup(ctx context.Context, store storage.Backend, signer *ciphersuite.SigningKey, cfg *Config, cred wire.Credential) (*Group, error) {
	c := orDefault(cfg)
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signer", group.ErrInvalidArgument)
	}
	oc := withStore(store, &c, ctx)
	g, err := group.Create(&c.Config, c.suite(), c.identity(signer, cred), c.GroupID, c.Extensions)
	if err != nil {
		return nil, err
	}
	h := newHandle(store, &c, oc, signer, g)
	if err := h.create(ctx, true); err != nil {
		return nil, err
	}
	h.log.Info("group created", "group", h.logID(), "suite", uint16(c.suite()))
	return h, nil
}

// LoadGroup loads a stored group. Its three outcomes are distinct: the
// group, an error matching ErrGroupNotFound, or another error (a storage
// failure, or stored state that does not decode: ErrCorruptRecord,
// group.ErrCorruptState). cfg supplies the settings that are not stored
// with the group (Rand, Now, PSKs, ValidateCredential, Logger); it may be
// nil.
func LoadGroup(ctx context.Context, store storage.Backend, groupID []byte, cfg ...*Config) (*Group, error) {
	var c Config
	if len(cfg) > 0 && cfg[0] != nil {
		c = *cfg[0]
	}
	recs, err := store.Load(ctx, groupID)
	if errors.Is(err, storage.ErrGroupNotFound) {
		return nil, fmt.Errorf("engine: group %x: %w", groupID, err)
	}
	if err != nil {
		return nil, storageErr("loading group", err)
	}
	defer recs.ClearKeyMaterial()
	mb, ok := recs.Find(storage.Public, metaName)
	if !ok {
		return nil, fmt.Errorf("%w: group %x has no %q record", ErrCorruptRecord, groupID, metaName)
	}
	m, err := decodeMeta(mb)
	if err != nil {
		return nil, err
	}
	signer, err := loadSigner(ctx, store, m.Signer)
	if err != nil {
		return nil, err
	}
	oc := withStore(store, &c, ctx)
	g, err := group.Restore(&c.Config, signer, recs.Records)
	if err != nil {
		return nil, err
	}
	cur, err := cursorOf(recs)
	if err != nil {
		return nil, err
	}
	h := newHandle(store, &c, oc, signer, g)
	h.version = recs.Version
	h.meta.Welcome = m.Welcome
	h.cursor = cur
	return h, nil
}

// DeleteGroup deletes a stored group and all its key material, whatever
// handles of it exist (they fail with ErrConflict on their next write).
func DeleteGroup(ctx context.Context, store storage.Backend, groupID []byte) error {
	recs, err := store.Load(ctx, groupID)
	if errors.Is(err, storage.ErrGroupNotFound) {
		return fmt.Errorf("engine: group %x: %w", groupID, err)
	}
	if err != nil {
		return storageErr("loading group", err)
	}
	recs.ClearKeyMaterial()
	var m *meta
	if mb, ok := recs.Find(storage.Public, metaName); ok {
		if m, err = decodeMeta(mb); err != nil {
			return err
		}
	}
	return deleteGroup(ctx, store, groupID, recs.Version, m)
}

// deleteGroup deletes a group at version, with the client records that
// die with it (m may be nil).
func deleteGroup(ctx context.Context, store storage.Backend, groupID []byte, version uint64, m *meta) error {
	u := &storage.Unit{Scope: storage.GroupScope(groupID), Version: version, DeleteGroup: true}
	if m != nil {
		u.Deletes = m.clientKeys()
	}
	if _, err := apply(ctx, store, u, 0); err != nil {
		return storageErr("deleting group", err)
	}
	return nil
}

// withStore makes c resolve external PSKs from the store too, during the
// operations of oc; see StorePSK.
func withStore(store storage.Backend, c *Config, ctx context.Context) *opContext {
	oc := &opContext{ctx: ctx}
	c.Config.PSKs = withStoredPSKs(store, oc, c.Config.PSKs)
	return oc
}

// newHandle wraps a group made or restored with a Config prepared by
// withStore, whose opContext is oc.
func newHandle(store storage.Backend, c *Config, oc *opContext, signer *ciphersuite.SigningKey, g *group.Group) *Group {
	oc.ctx = nil
	id := g.GroupID()
	h := &Group{
		opc:    oc,
		store:  store,
		cfg:    *c,
		signer: signer,
		meta:   meta{Suite: uint16(g.Suite().ID()), Signer: signerRef(signer.PublicKey())},
		id:     id,
		log:    c.logger(),
		g:      g,
	}
	return h
}

func (h *Group) logID() string {
	if len(h.id) > 16 {
		return hex.EncodeToString(h.id[:16]) + "..."
	}
	return hex.EncodeToString(h.id)
}

// create stores a group that was just made in memory (created, joined),
// with the client records its changes touch (a used key package's
// deletion) in the same unit, after storing the signature key unless it
// was read from the store.
func (h *Group) create(ctx context.Context, storeSignerFirst bool) error {
	if storeSignerFirst {
		if err := storeSigner(ctx, h.store, ciphersuite.ID(h.meta.Suite), h.signer); err != nil {
			return err
		}
	}
	ch := h.g.TakeChanges()
	defer ch.Clear()
	u := changesUnit(h.id, 0, &ch)
	u.Puts = append(u.Puts, h.meta.records(h.id)...)
	v, err := h.apply(ctx, u)
	if errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("engine: group %x: %w", h.id, ErrGroupExists)
	}
	if err != nil {
		return storageErr("storing new group", err)
	}
	h.version = v
	return nil
}

// do runs one operation on the group and persists what it changed before
// returning, so that no result leaves the handle before its state is
// stored.
func (h *Group) do(ctx context.Context, op string, f func(g *group.Group) error) error {
	_, err := call(ctx, h, op, callID(op), func(g *group.Group) (struct{}, bool, error) { return struct{}{}, true, f(g) })
	return err
}

// call runs one call of an operation (id names the method and its input:
// callID) and returns its result once its changes are stored, unless f
// says they are stored with the next operation that stores. If the
// storage's outcome is unknown, the result is kept in the handle and
// returned by a retry of the same call once the storage is confirmed.
func call[T any](ctx context.Context, h *Group, op string, id [sha256.Size]byte, f func(g *group.Group) (res T, store bool, err error)) (T, error) {
	r, err := h.run(ctx, op, id, func(g *group.Group) (any, bool, error) { return f(g) })
	if err != nil {
		var zero T
		return zero, err
	}
	return r.(T), nil
}

// run is call without the result's type.
func (h *Group) run(ctx context.Context, op string, id [sha256.Size]byte, f func(g *group.Group) (res any, store bool, err error)) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return nil, h.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.opc.ctx = ctx
	defer func() { h.opc.ctx = nil }()
	if err := h.resolveLocked(ctx); err != nil {
		return nil, err
	}
	if res, ok := h.takeConfirmed(id); ok {
		return res, nil
	}
	res, store, err := f(h.g)
	if err != nil {
		// Package group leaves the state unchanged on failure; if changes
		// were logged anyway (and none were left by an earlier operation),
		// the stored state is the truth.
		if !h.deferred {
			if ch := h.g.TakeChanges(); !ch.Empty() {
				ch.Clear()
				h.reloadLocked(context.WithoutCancel(ctx))
			}
		}
		return nil, err
	}
	if !store {
		h.deferred = true
		return res, nil
	}
	if err := h.persistLocked(ctx, op, id, res); err != nil {
		return nil, err
	}
	return res, nil
}

// read runs f on the group without changing it, or returns why the
// handle has no group.
func (h *Group) read(f func(g *group.Group)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return h.err
	}
	f(h.g)
	return nil
}

// persistLocked hands the operation's changes to the backend as one unit.
// If the backend refuses or fails, the in-memory state is ahead of the
// stored one: reload it, so that the handle never acts on state that was
// not stored. If the outcome is unknown, the handle keeps its state, the
// unit and the call's result res until a retry tells (resolveLocked).
func (h *Group) persistLocked(ctx context.Context, op string, id [sha256.Size]byte, res any) error {
	ch := h.g.TakeChanges()
	if ch.Empty() && !h.cursorPending {
		return nil
	}
	u := changesUnit(h.id, h.version, &ch)
	cursor, withCursor := h.nextCursor, h.cursorPending
	if withCursor {
		u.Puts = append(u.Puts, cursorRecord(h.id, cursor))
		h.nextCursor, h.cursorPending = nil, false
	}
	v, err := h.apply(ctx, u)
	h.deferred = false // stored now, or dropped by the reload below
	if errors.Is(err, storage.ErrUnknownOutcome) {
		h.unresolved = &unresolved{unit: u, op: op, call: id, res: res, cursor: cursor, withCursor: withCursor}
		h.log.Warn("storing group state: outcome unknown; keeping the result until a retry tells", "group", h.logID(), "op", op)
		return unknownErr(op, err)
	}
	ch.Clear()
	if err != nil {
		err = storageErr(op, err)
		h.log.Warn("storing group state failed; reloading", "group", h.logID(), "op", op, "err", err)
		h.reloadLocked(context.WithoutCancel(ctx))
		return err
	}
	h.version = v
	if withCursor {
		h.cursor = cursor
	}
	h.log.Debug("group state stored", "group", h.logID(), "op", op, "epoch", h.g.Epoch(),
		"version", v, "ops", u.Ops(), "bytes", u.Bytes())
	return nil
}

// reloadLocked replaces the in-memory state by the stored one, or breaks
// the handle if that fails.
func (h *Group) reloadLocked(ctx context.Context) {
	recs, err := h.store.Load(ctx, h.id)
	if err != nil {
		h.g, h.err = nil, fmt.Errorf("%w: reload: %w", ErrHandleBroken, err)
		return
	}
	defer recs.ClearKeyMaterial()
	g, err := group.Restore(&h.cfg.Config, h.signer, recs.Records)
	if err != nil {
		h.g, h.err = nil, fmt.Errorf("%w: reload: %w", ErrHandleBroken, err)
		return
	}
	cur, err := cursorOf(recs)
	if err != nil {
		h.g, h.err = nil, fmt.Errorf("%w: reload: %w", ErrHandleBroken, err)
		return
	}
	h.g, h.version, h.deferred = g, recs.Version, false
	h.cursor, h.nextCursor, h.cursorPending = cur, nil, false
	h.dropKept()
}

// dropKept forgets an unresolved or confirmed operation: the state was
// reloaded from what is stored, which is the truth whatever its outcome
// (a late landing of its unit only makes the handle's version stale, and
// the next write conflicts and reloads).
func (h *Group) dropKept() {
	if h.unresolved != nil {
		h.unresolved.drop()
	}
	h.unresolved, h.confirmed = nil, nil
}

// Reload replaces the handle's state by the stored one, for instance after
// ErrConflict or to pick up changes made through another handle.
func (h *Group) Reload(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil && errors.Is(h.err, errDeleted) {
		return h.err
	}
	h.opc.ctx = ctx
	defer func() { h.opc.ctx = nil }()
	h.reloadLocked(ctx)
	if h.g == nil {
		return h.err
	}
	h.err = nil
	return nil
}

// Refresh makes a cached handle current at the cost of one small request
// when it already is: it reads the group's stored version
// (storage.Backend.Version), first resolving an operation whose outcome is
// unknown, and reloads only if another handle (in this process or another
// worker) stored a change since. It reports whether it reloaded; a reload
// drops a staged commit, whose merge would conflict. A deleted group gives
// an error matching ErrGroupNotFound and breaks the handle.
func (h *Group) Refresh(ctx context.Context) (reloaded bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return false, h.err
	}
	if err := h.resolveLocked(ctx); err != nil {
		return false, err
	}
	v, err := h.store.Version(ctx, h.id)
	switch {
	case errors.Is(err, storage.ErrGroupNotFound):
		h.g, h.err = nil, fmt.Errorf("%w: %w", errDeleted, err)
		return false, h.err
	case err != nil:
		return false, storageErr("reading the group's version", err)
	case v == h.version:
		return false, nil
	}
	h.opc.ctx = ctx
	defer func() { h.opc.ctx = nil }()
	h.reloadLocked(ctx)
	if h.g == nil {
		return false, h.err
	}
	return true, nil
}

var errDeleted = fmt.Errorf("%w: group deleted", ErrHandleBroken)

// Store writes the handle's whole state over the stored one (fenced by
// the version, like every write): public records that differ are
// rewritten (in the current encoding), missing records added, and stored
// records the state no longer has deleted. Key material already stored
// under a name is left as it is (it is write-once, and decodes). Every
// operation already stores its changes: Store is for rewriting a group's
// records after an upgrade of their encoding; CopyTo moves a group to
// another backend.
func (h *Group) Store(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return h.err
	}
	recs, err := h.store.Load(ctx, h.id)
	if err != nil && !errors.Is(err, storage.ErrGroupNotFound) {
		return storageErr("loading group", err)
	}
	var stored []storage.Record
	var version uint64
	if recs != nil {
		defer recs.ClearKeyMaterial()
		stored, version = recs.Records, recs.Version
	}
	if version != h.version {
		return fmt.Errorf("engine: store: stored version %d, handle at %d: %w", version, h.version, ErrConflict)
	}
	want := append(h.g.Records(), h.meta.record(h.id))
	if h.cursor != nil {
		want = append(want, cursorRecord(h.id, h.cursor))
	}
	defer clearRecords(want)
	u := diffUnit(h.id, version, stored, want)
	if len(u.Puts)+len(u.Deletes) == 0 {
		return nil
	}
	v, err := h.apply(ctx, u)
	if err != nil {
		return storageErr("store", err)
	}
	h.version = v
	return nil
}

// diffUnit builds the unit that turns stored into want, except for key
// material stored under the same name, which is write-once.
func diffUnit(id []byte, version uint64, stored, want []storage.Record) *storage.Unit {
	have := make(map[storage.Key][]byte, len(stored))
	for _, r := range stored {
		have[r.Key] = r.Value
	}
	u := &storage.Unit{Scope: storage.GroupScope(id), Version: version}
	seen := make(map[storage.Key]bool, len(want))
	for _, r := range want {
		seen[r.Key] = true
		old, ok := have[r.Key]
		switch {
		case !ok:
			u.Puts = append(u.Puts, r)
		case r.Key.Class == storage.Public && string(old) != string(r.Value):
			u.Puts = append(u.Puts, r)
		}
	}
	for _, r := range stored {
		if !seen[r.Key] {
			u.Deletes = append(u.Deletes, r.Key)
		}
	}
	return u
}

// Delete deletes the group from storage with all its key material,
// irrevocably, and makes the handle unusable.
func (h *Group) Delete(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return h.err
	}
	if err := h.resolveLocked(ctx); err != nil {
		return err
	}
	if err := deleteGroup(ctx, h.store, h.id, h.version, &h.meta); err != nil {
		return err
	}
	h.dropKept()
	h.g, h.err = nil, errDeleted
	h.log.Info("group deleted", "group", h.logID())
	return nil
}

// CopyTo stores the group's whole state, and the signature key, in another
// backend, as a new group there; for moving a group between backends. The
// handle keeps using its own backend.
func (h *Group) CopyTo(ctx context.Context, dst storage.Backend) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return h.err
	}
	if err := storeSigner(ctx, dst, ciphersuite.ID(h.meta.Suite), h.signer); err != nil {
		return err
	}
	puts := append(h.g.Records(), h.meta.records(h.id)...)
	defer clearRecords(puts)
	if _, err := h.applyTo(ctx, dst, &storage.Unit{Scope: storage.GroupScope(h.id), Puts: puts}); err != nil {
		if errors.Is(err, storage.ErrConflict) {
			return fmt.Errorf("engine: group %x: %w", h.id, ErrGroupExists)
		}
		return storageErr("copying group", err)
	}
	return nil
}

// Version returns the stored version the handle is at.
func (h *Group) Version() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.version
}
