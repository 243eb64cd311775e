package engine

import (
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/storage"
)

// Errors of the engine; match them with errors.Is. Protocol failures keep
// the sentinels of package group (group.ErrWrongEpoch, ...).
var (
	// ErrGroupNotFound: no group with that id is stored. It is
	// storage.ErrGroupNotFound, so it also matches storage.ErrNotFound.
	ErrGroupNotFound = storage.ErrGroupNotFound
	// ErrConflict: another handle or process changed the group since this
	// handle read it; nothing was written and the handle now holds the
	// stored state. It is storage.ErrConflict.
	ErrConflict = storage.ErrConflict
	// ErrUnknownOutcome: the backend could not tell whether the
	// operation's unit was stored, however often it was retried. The handle
	// keeps the operation's state and result: the same call again returns
	// the result once a retry finds the unit stored (Resolve retries
	// without a call), and a Welcome joined again gives the group. It is
	// storage.ErrUnknownOutcome.
	ErrUnknownOutcome = storage.ErrUnknownOutcome
	// ErrGroupExists: creating or joining a group whose id is already
	// stored. It matches ErrConflict too.
	ErrGroupExists = fmt.Errorf("engine: group already exists: %w", storage.ErrConflict)
	// ErrStorage: the backend failed; nothing of the operation is visible
	// to this handle, which reloaded the stored state.
	ErrStorage = errors.New("engine: storage failure")
	// ErrHandleBroken: the handle lost its state (a write failed and so did
	// the reload, or the group was deleted through it). Load the group
	// again.
	ErrHandleBroken = errors.New("engine: group handle unusable; load the group again")
	// ErrNoKeyPackage: a Welcome names none of the key packages this client
	// has stored (never made, already used, or deleted).
	ErrNoKeyPackage = errors.New("engine: welcome is for none of the stored key packages")
	// ErrSignerNotFound: the signature key a stored group or key package
	// uses is not stored.
	ErrSignerNotFound = errors.New("engine: signature key not found")
	// ErrCorruptRecord: a record the engine wrote does not decode.
	ErrCorruptRecord = errors.New("engine: corrupt record")
)

// storageErr wraps a backend error: conflicts keep their identity, the
// rest become ErrStorage failures. Backend errors carry keys, never values.
func storageErr(op string, err error) error {
	// A conflict is another writer; an invalid unit is this engine's state
	// not fitting the storage contract (a bug, or a group beyond the sizes
	// the records are laid out for): retrying cannot help either.
	if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrInvalidUnit) {
		return fmt.Errorf("engine: %s: %w", op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrStorage, op, err)
}
