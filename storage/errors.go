package storage

import "errors"

// Errors a Backend returns; match them with errors.Is. Backends wrap them with
// detail (the key, the group, the versions) that never includes a value.
var (
	// ErrNotFound: no record under the key. Get returns it for a missing
	// record, including one of a group that does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrGroupNotFound: Load was asked for a group that does not exist, or
	// no longer does. It matches ErrNotFound too, so callers that do not
	// care which kind of thing is missing can test for ErrNotFound alone.
	ErrGroupNotFound error = &subError{msg: "storage: group not found", parent: ErrNotFound}
	// ErrConflict: the unit's Version is not the group's stored version. The
	// unit was built on stale state (another handle advanced or deleted the
	// group, or created it first); nothing was applied. Reload and redo the
	// operation from its input.
	ErrConflict = errors.New("storage: version conflict")
	// ErrWriteOnce: the unit puts a KeyMaterial record under a name that
	// already holds one. Key material is never overwritten in place (see the
	// package documentation); nothing was applied.
	ErrWriteOnce = errors.New("storage: key material name already in use")
	// ErrInvalidUnit: the unit breaks a rule Unit.Validate checks (bad key,
	// duplicate key, key of another group, size limit, ...). It is a bug in
	// the caller, not a storage failure; nothing was applied.
	ErrInvalidUnit = errors.New("storage: invalid unit")
	// ErrUnknownOutcome: the backend cannot tell whether the unit was
	// applied (a timeout, a dropped connection, a failover after the write
	// was sent). It was applied entirely or not at all. Apply the same unit
	// (same ID) again to learn which: it is applied then, or recognized as
	// applied and its version returned. Until then, act as if it may have
	// been applied: keep what the operation produced.
	ErrUnknownOutcome = errors.New("storage: outcome of the unit unknown")
	// ErrInvalidKey: a Key, Scope, Class, name or List prefix breaks the
	// rules in the package documentation. A unit holding such a key fails
	// with an error that matches both ErrInvalidUnit and ErrInvalidKey.
	ErrInvalidKey = errors.New("storage: invalid key")
)

// subError is a sentinel that also matches a more general sentinel.
type subError struct {
	msg    string
	parent error
}

// Error returns the sentinel's message.
func (e *subError) Error() string { return e.msg }

// Unwrap returns the more general sentinel.
func (e *subError) Unwrap() error { return e.parent }
