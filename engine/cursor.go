package engine

import (
	"bytes"
	"context"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
)

// The cursor is an application's mark stored with a group, in the same
// unit as the operation it marks: a consumer of an ordered log (the worker)
// keeps the position of the last input it applied in it, and whatever it
// must publish for that input, so that a redelivered input is recognized
// and never applied twice, and a crash between storing and publishing
// loses nothing. The engine does not interpret it.
//
//	cursor            [1, cursor bin] (group, Public)
const (
	cursorName = "cursor"
	// MaxCursorLen bounds a cursor.
	MaxCursorLen = 192 << 10
)

func cursorRecord(groupID, c []byte) storage.Record {
	return storage.Record{Key: storage.Key{Scope: storage.GroupScope(groupID), Class: storage.Public, Name: cursorName},
		Value: persist.Envelope(func(e *persist.Encoder) {
			e.Array(2)
			e.Uint(recordVersion)
			e.Bin(c)
		})}
}

func decodeCursor(b []byte) ([]byte, error) {
	d := persist.NewDecoder(b)
	d.Open(recordVersion, 1)
	c := d.Bin(MaxCursorLen)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %s record: %w", ErrCorruptRecord, cursorName, err)
	}
	return c, nil
}

// cursorOf reads the cursor from a group's records (nil if none).
func cursorOf(recs *storage.GroupRecords) ([]byte, error) {
	b, ok := recs.Find(storage.Public, cursorName)
	if !ok {
		return nil, nil
	}
	return decodeCursor(b)
}

// Cursor returns the cursor stored with the group: the value of the last
// SetCursor whose unit was stored (by this handle or, as of its last load,
// another), or nil.
func (h *Group) Cursor() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return bytes.Clone(h.cursor)
}

// SetCursor sets the cursor to store with the next unit this handle writes,
// atomically with that operation's changes. While no unit has stored it (an
// operation that failed, such as a rejected message, or one whose changes
// wait for the next, such as processing a commit before its merge) it stays
// pending; StoreCursor stores it alone. A reload drops it.
func (h *Group) SetCursor(c []byte) error {
	if len(c) > MaxCursorLen {
		return fmt.Errorf("engine: cursor of %d bytes, more than MaxCursorLen (%d)", len(c), MaxCursorLen)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextCursor, h.cursorPending = bytes.Clone(c), true
	return nil
}

// StoreCursor stores a pending cursor in a unit of its own; without one it
// does nothing.
func (h *Group) StoreCursor(ctx context.Context) error {
	return h.do(ctx, "store cursor", func(*group.Group) error { return nil })
}
