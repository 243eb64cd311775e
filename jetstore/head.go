package jetstore

import (
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/storage"
)

// head is a scope's head record, in the key bucket under <scope>.h. For a
// group its revision is the commit point of every unit: a unit lands when
// the atomic batch that carries its key material and the new head is
// accepted, conditional on the head's last sequence. It holds no secret.
type head struct {
	Format uint8 `msgpack:"f"`
	// Version is the group's version; for a tombstone, the version of the
	// unit that deleted it; for the client head, a counter of client units.
	// Versions never go back, so a re-created group continues from it.
	Version uint64 `msgpack:"v"`
	// Deleted marks a tombstone: the group was deleted, and the head stays
	// so that versions are never reused and a retried deletion is
	// recognized.
	Deleted bool `msgpack:"d,omitempty"`
	// Creating marks a creation too large for one atomic batch in progress:
	// the group does not exist yet; records written under it are
	// leftovers if it is abandoned.
	Creating *creating `msgpack:"c,omitempty"`
	// Intent marks a unit under way in the intent commit mode: its key
	// material is being written to the subjects it names, and is not part
	// of the scope until the head's next revision commits the unit.
	Intent *intent `msgpack:"w,omitempty"`
	// Abandoned is an intent rolled back by a compare-and-set of the head
	// (so that its writer can no longer commit it), whose key material may
	// not be erased yet: it is not part of the scope, and whoever writes
	// the head next erases it first.
	Abandoned *intent `msgpack:"a,omitempty"`
	// PubVersion is the version of the last unit that changed the scope's
	// public records in the snapshot bucket; the snapshot's marker reaches
	// it once that unit's journal has been applied.
	PubVersion uint64 `msgpack:"p,omitempty"`
	// Units are the IDs and resulting versions of the last
	// storage.RememberedUnits units, newest last.
	Units []remembered `msgpack:"u,omitempty"`
	// Journal is the last unit's work after its commit point: public
	// changes for the snapshot bucket and key material to erase. Whoever
	// changes the scope next finishes it first; so is it after a crash.
	Journal *journal `msgpack:"j,omitempty"`
	// Chunks is the number of journal chunk records (<scope>.j.<i>) that
	// hold the journal when it is too large for the head.
	Chunks int `msgpack:"n,omitempty"`
}

type creating struct {
	ID    storage.UnitID `msgpack:"i"`
	Since time.Time      `msgpack:"t"`
	// Prior is the head the creation replaced (a tombstone, or nil).
	Prior *head `msgpack:"p,omitempty"`
}

type intent struct {
	// ID is the unit's ID (zero if it has none), to recognize a retry;
	// Token is drawn for the intent, to tag what it writes.
	ID    storage.UnitID `msgpack:"i"`
	Token storage.UnitID `msgpack:"k"`
	Since time.Time      `msgpack:"t"`
	// Subjects are the key material and journal chunk subjects the unit
	// writes before its commit.
	Subjects []string `msgpack:"s"`
}

// unitHeader names the unit that wrote a key-material record under an
// intent: a subject of the client scope can be written by units of several
// scopes, and only the intent's own records may be rolled back with it.
const unitHeader = "Mls-Unit"

// pendingUnder reports whether m was written by the head's unfinished
// intent (the head being at hseq).
func (h *head) pendingUnder(m *jetstream.RawStreamMsg, hseq uint64) bool {
	if h == nil {
		return false
	}
	if h.Abandoned.wrote(m) {
		return true
	}
	return h.Intent != nil && m.Sequence > hseq && h.Intent.wrote(m)
}

// wrote reports whether m is a record the intent wrote.
func (in *intent) wrote(m *jetstream.RawStreamMsg) bool {
	if in == nil || m.Header.Get(unitHeader) != in.Token.String() {
		return false
	}
	return slices.Contains(in.Subjects, m.Subject)
}

// unfinished reports whether the head has work left by a writer: a
// creation, a unit under way or rolled back, or a journal.
func (h *head) unfinished() bool {
	return h.Creating != nil || h.Intent != nil || h.Abandoned != nil || h.Journal != nil || h.Chunks > 0
}

type remembered struct {
	ID      storage.UnitID `msgpack:"i"`
	Version uint64         `msgpack:"v"`
}

// journal is what remains to be done of a committed unit.
type journal struct {
	Version uint64 `msgpack:"v"`
	// PrevPub is the snapshot marker's value before this journal: Load
	// overlays the journal on a snapshot whose marker is PrevPub.
	PrevPub     uint64    `msgpack:"pp,omitempty"`
	Puts        []jrecord `msgpack:"p,omitempty"` // Public puts only
	Deletes     []jkey    `msgpack:"d,omitempty"`
	Prefixes    []jkey    `msgpack:"x,omitempty"`
	DeleteGroup bool      `msgpack:"g,omitempty"`
}

type jrecord struct {
	Client bool   `msgpack:"c,omitempty"`
	Name   string `msgpack:"n"`
	Value  []byte `msgpack:"v"`
}

type jkey struct {
	Client bool          `msgpack:"c,omitempty"`
	Class  storage.Class `msgpack:"k"`
	Name   string        `msgpack:"n"` // a name, or a prefix ending in "/"
}

const headFormat = 1

// live is the group version a unit must carry: 0 unless the group exists.
func (h *head) live() uint64 {
	if h == nil || h.Deleted || h.Creating != nil {
		return 0
	}
	return h.Version
}

// exists reports whether the head is of an existing group.
func (h *head) exists() bool {
	return h != nil && !h.Deleted && h.Creating == nil && h.Version > 0
}

func (h *head) remembered(id storage.UnitID) (uint64, bool) {
	if h == nil || id.IsZero() {
		return 0, false
	}
	for _, r := range h.Units {
		if r.ID == id {
			return r.Version, true
		}
	}
	return 0, false
}

func (h *head) remember(id storage.UnitID, v uint64) {
	if id.IsZero() {
		return
	}
	h.Units = append(h.Units, remembered{ID: id, Version: v})
	if n := len(h.Units) - storage.RememberedUnits; n > 0 {
		h.Units = append([]remembered(nil), h.Units[n:]...)
	}
}

func (j *journal) hasPublic() bool {
	if j == nil {
		return false
	}
	if len(j.Puts) > 0 || j.DeleteGroup {
		return true
	}
	for _, k := range j.Deletes {
		if k.Class == storage.Public {
			return true
		}
	}
	for _, k := range j.Prefixes {
		if k.Class == storage.Public {
			return true
		}
	}
	return false
}

// kills reports whether the journal deletes the record k of the scope
// whose head holds it (client keys are those with Client set).
func (j *journal) kills(scope storage.Scope, k storage.Key) bool {
	if j == nil {
		return false
	}
	client := k.Scope.IsClient()
	if j.DeleteGroup && !client && k.Scope == scope {
		return true
	}
	for _, d := range j.Deletes {
		if d.Client == client && d.Class == k.Class && d.Name == k.Name {
			return true
		}
	}
	for _, p := range j.Prefixes {
		if p.Client == client && p.Class == k.Class && len(k.Name) > len(p.Name) && k.Name[:len(p.Name)] == p.Name {
			return true
		}
	}
	return false
}

func encodeHead(h *head) ([]byte, error) {
	h.Format = headFormat
	return msgpack.Marshal(h)
}

func decodeHead(b []byte) (*head, error) {
	var h head
	if err := msgpack.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("%w: head record: %v", ErrCorrupt, err)
	}
	if h.Format != headFormat {
		return nil, fmt.Errorf("%w: head record format %d (this build reads %d)", ErrCorrupt, h.Format, headFormat)
	}
	return &h, nil
}

func encodeJournal(j *journal) ([]byte, error) { return msgpack.Marshal(j) }

func decodeJournal(b []byte) (*journal, error) {
	var j journal
	if err := msgpack.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: journal: %v", ErrCorrupt, err)
	}
	return &j, nil
}

// marker is the snapshot bucket's record of which journal of a scope has
// been applied to it.
type marker struct {
	Applied uint64 `msgpack:"a"`
	// Partial is the version of a journal whose application is under way
	// in several batches.
	Partial uint64 `msgpack:"p,omitempty"`
}
