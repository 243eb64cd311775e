package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/storage"
)

// Retries of a unit whose outcome is unknown: the backend recognizes a unit
// it applied by its ID, so retrying is always safe; the limits only bound
// how long one call waits for a backend that keeps failing.
const (
	// DefaultApplyAttempts is Config.ApplyAttempts when it is zero.
	DefaultApplyAttempts = 8
	firstBackoff         = 5 * time.Millisecond
	maxBackoff           = 500 * time.Millisecond
)

// apply hands u to the backend, with a fresh ID if it has none, and
// retries it while its outcome is unknown (storage.ErrUnknownOutcome) and
// ctx allows: a retry is applied then or recognized as applied, so no
// retry applies it twice. An error matching ErrUnknownOutcome means u may
// or may not be stored; apply u again to learn which. attempts bounds the
// tries (0: DefaultApplyAttempts).
func apply(ctx context.Context, store storage.Backend, u *storage.Unit, attempts int) (uint64, error) {
	if attempts <= 0 {
		attempts = DefaultApplyAttempts
	}
	if u.ID.IsZero() {
		id, err := storage.NewUnitID(nil)
		if err != nil {
			return 0, err
		}
		u.ID = id
	}
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		v, err := store.Apply(ctx, u)
		if !errors.Is(err, storage.ErrUnknownOutcome) || attempt >= attempts {
			return v, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, err
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// apply is apply with the handle's backend and Config.ApplyAttempts.
func (h *Group) apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	return apply(ctx, h.store, u, h.cfg.ApplyAttempts)
}

// applyTo is apply with another backend and Config.ApplyAttempts.
func (h *Group) applyTo(ctx context.Context, store storage.Backend, u *storage.Unit) (uint64, error) {
	return apply(ctx, store, u, h.cfg.ApplyAttempts)
}

// changesUnit is the unit that stores ch, a group's changes, on top of
// version.
func changesUnit(groupID []byte, version uint64, ch *group.Changes) *storage.Unit {
	return &storage.Unit{
		Scope:          storage.GroupScope(groupID),
		Version:        version,
		Puts:           ch.Puts,
		Deletes:        ch.Deletes,
		DeletePrefixes: ch.DeletePrefixes,
	}
}

// unresolved is an operation whose unit may or may not be stored: the
// handle keeps its state and its result until a retry of the unit tells.
type unresolved struct {
	unit *storage.Unit // owns its values: key material is cleared on resolution
	op   string
	call [sha256.Size]byte // which call made it: the method and its input
	res  any               // what the call returns once the unit is stored
	// cursor is stored by the unit, if withCursor.
	cursor     []byte
	withCursor bool
}

func (u *unresolved) drop() { clearRecords(u.unit.Puts) }

// callID identifies a call of op with the given input, so that a retry of
// the same call after ErrUnknownOutcome gets the result it would have had.
func callID(op string, input ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(op))
	for _, in := range input {
		var n [8]byte
		for i := range n {
			n[i] = byte(uint64(len(in)) >> (8 * i))
		}
		h.Write(n[:])
		h.Write(in)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// resolveLocked learns the outcome of the handle's unresolved unit, if it
// has one, by applying it again. If it is stored, the handle's state is
// current and its result is kept for the retry of the call that made it
// (h.confirmed). If it is not stored and cannot be (another writer
// advanced the group), the handle reloads and the error says so. If the
// outcome is still unknown, the error matches ErrUnknownOutcome and
// everything is kept.
func (h *Group) resolveLocked(ctx context.Context) error {
	p := h.unresolved
	if p == nil {
		return nil
	}
	v, err := h.apply(ctx, p.unit)
	if errors.Is(err, storage.ErrUnknownOutcome) {
		return unknownErr(p.op, err)
	}
	h.unresolved = nil
	p.drop()
	if err != nil {
		// Not stored, and now it never will be: the state it was built
		// on is gone. What the call produced was never returned.
		h.log.Warn("unresolved unit refused on retry; reloading", "group", h.logID(), "op", p.op, "err", err)
		h.reloadLocked(context.WithoutCancel(ctx))
		return storageErr(p.op, err)
	}
	h.version = v
	if p.withCursor {
		h.cursor = p.cursor
	}
	h.confirmed = p
	return nil
}

// takeConfirmed returns the result of a confirmed operation if call is the
// call that made it, and forgets it in any case: a caller that makes
// another call has moved on.
func (h *Group) takeConfirmed(call [sha256.Size]byte) (any, bool) {
	p := h.confirmed
	h.confirmed = nil
	if p == nil {
		return nil, false
	}
	if p.call == call {
		return p.res, true
	}
	h.log.Warn("result of an operation confirmed late is dropped: the next call is another one", "group", h.logID(), "op", p.op)
	return nil, false
}

// Resolve retries the storage of an operation that failed with
// ErrUnknownOutcome, without starting another one: nil once it is stored
// (or the handle has nothing unresolved), an error matching
// ErrUnknownOutcome while the backend still cannot tell. The operation's
// result stays kept for a retry of the same call.
func (h *Group) Resolve(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.g == nil {
		return h.err
	}
	return h.resolveLocked(ctx)
}

// Unresolved reports whether an operation's storage awaits confirmation
// (it failed with ErrUnknownOutcome): until then the handle's state may be
// ahead of the stored one.
func (h *Group) Unresolved() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.unresolved != nil
}

// unknownErr wraps an error that matches ErrUnknownOutcome.
func unknownErr(op string, err error) error { return fmt.Errorf("engine: %s: %w", op, err) }
