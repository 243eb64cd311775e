package storage

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Unit is one atomic change: every write and deletion of one operation on one
// group, including the client-wide records the operation touches (joining a
// group deletes the key package it used in the same unit). A unit whose Scope
// is ClientScope() changes only client-wide records and is not fenced by a
// version.
//
// Its size is bounded whatever the group's size or traffic: at most
// MaxUnitRecords operations (a put, a delete, a prefix deletion and a group
// deletion count one each, however many records the last two remove) and
// MaxUnitBytes bytes. A unit that creates its group (Creates) holds the
// whole group, so its bounds are MaxCreateUnitRecords and
// MaxCreateUnitBytes.
type Unit struct {
	// Scope is the group the unit changes, or ClientScope() for a unit that
	// changes client-wide records only.
	Scope Scope
	// Version is the group version the unit was built on: GroupRecords.Version
	// of the Load it started from, or the version the previous Apply
	// returned, or 0 for a group that must not exist yet. It must be 0 in a
	// client unit.
	Version uint64
	// ID names the unit, so that applying it again after ErrUnknownOutcome
	// (or a lost reply) is recognized instead of failing with ErrConflict or
	// ErrWriteOnce. Draw it at random (NewUnitID) when the unit is built, and
	// keep it for every retry of that unit and no other. A zero ID is
	// allowed: such a unit is not recognized when retried.
	ID UnitID
	// Puts writes records. Each key is in the unit's group scope or in the
	// client scope.
	Puts []Record
	// Deletes removes records; deleting a record that does not exist is not
	// an error. Each key is in the unit's group scope or in the client scope.
	Deletes []Key
	// DeletePrefixes removes every record of a scope and class whose name
	// starts with the prefix (such as every secret of an epoch,
	// "epoch/12/"), erasing key material as Deletes does. Matching no record
	// is not an error. Scopes are those of Deletes; no put or delete of the
	// unit may fall under one of its prefixes.
	DeletePrefixes []KeyPrefix
	// DeleteGroup removes the group: every record of its scope, both
	// classes, and its version, so that Load gives ErrGroupNotFound. Puts and
	// Deletes may then only touch client-wide records. With Version 0 and no
	// such group it is a no-op.
	DeleteGroup bool
}

// UnitID names one unit for recognizing retries. The zero UnitID names none.
type UnitID [16]byte

// NewUnitID draws a UnitID from r (crypto/rand.Reader when r is nil). It
// fails only if r does.
func NewUnitID(r io.Reader) (UnitID, error) {
	var id UnitID
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, id[:]); err != nil {
		return UnitID{}, fmt.Errorf("storage: drawing a unit id: %w", err)
	}
	return id, nil
}

// IsZero reports whether id is the zero UnitID.
func (id UnitID) IsZero() bool { return id == UnitID{} }

// String returns the id in hex.
func (id UnitID) String() string { return hex.EncodeToString(id[:]) }

// KeyPrefix addresses the records of one scope and class whose names start
// with Prefix: one or more whole name segments followed by "/", as in List.
type KeyPrefix struct {
	Scope  Scope
	Class  Class
	Prefix string
}

// Validate checks the prefix: a valid scope and class, and a Prefix of whole
// segments ending in "/" (not empty: a whole group is DeleteGroup's). The
// error matches ErrInvalidKey.
func (p KeyPrefix) Validate() error {
	if p.Prefix == "" {
		return fmt.Errorf("%w: empty prefix", ErrInvalidKey)
	}
	return ValidateList(p.Scope, p.Class, p.Prefix)
}

// Covers reports whether k falls under p.
func (p KeyPrefix) Covers(k Key) bool {
	return k.Scope == p.Scope && k.Class == p.Class && strings.HasPrefix(k.Name, p.Prefix)
}

// String returns scope/class/prefix*.
func (p KeyPrefix) String() string {
	return p.Scope.String() + "/" + p.Class.String() + "/" + p.Prefix + "*"
}

// Validate checks the unit's shape (no storage is consulted). Every Backend
// must call it, or check the same rules, before applying a unit, so that a
// unit is valid or invalid alike on every backend. The error matches
// ErrInvalidUnit. The rules: the unit has a scope; a client unit has Version 0
// and no DeleteGroup; every key and prefix is valid and in the unit's group
// or the client scope; no key appears twice across Puts and Deletes, and none
// falls under one of DeletePrefixes; with DeleteGroup, no key or prefix is in
// the group's scope; at most MaxUnitRecords operations; no value longer than
// MaxValueLen; at most MaxUnitBytes in all (Unit.Bytes).
func (u *Unit) Validate() error {
	if u == nil {
		return fmt.Errorf("%w: nil unit", ErrInvalidUnit)
	}
	if u.Scope.kind == scopeZero {
		return fmt.Errorf("%w: zero Scope (use GroupScope or ClientScope)", ErrInvalidUnit)
	}
	if err := u.Scope.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUnit, err)
	}
	if u.Scope.IsClient() {
		if u.Version != 0 {
			return fmt.Errorf("%w: client unit with Version %d (client records are not versioned)", ErrInvalidUnit, u.Version)
		}
		if u.DeleteGroup {
			return fmt.Errorf("%w: DeleteGroup in a client unit", ErrInvalidUnit)
		}
	}
	maxOps, maxBytes, what := MaxUnitRecords, MaxUnitBytes, ""
	if u.Creates() {
		maxOps, maxBytes, what = MaxCreateUnitRecords, MaxCreateUnitBytes, "Create"
	}
	if n := u.Ops(); n > maxOps {
		return fmt.Errorf("%w: %d operations, more than Max%sUnitRecords (%d)", ErrInvalidUnit, n, what, maxOps)
	}
	if n := u.Bytes(); n > maxBytes {
		return fmt.Errorf("%w: %d bytes, more than Max%sUnitBytes (%d)", ErrInvalidUnit, n, what, maxBytes)
	}
	for i, p := range u.DeletePrefixes {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("%w: prefix %d: %w", ErrInvalidUnit, i, err)
		}
		if err := u.checkScope(p.Scope, p); err != nil {
			return fmt.Errorf("%w: prefix %d: %w", ErrInvalidUnit, i, err)
		}
	}
	n := len(u.Puts) + len(u.Deletes)
	var seen map[Key]struct{}
	if n > smallUnit {
		seen = make(map[Key]struct{}, n)
	}
	for i, r := range u.Puts {
		if err := u.checkKey(r.Key); err != nil {
			return fmt.Errorf("%w: put %d: %w", ErrInvalidUnit, i, err)
		}
		if len(r.Value) > MaxValueLen {
			return fmt.Errorf("%w: put %d (%v): value of %d bytes, more than MaxValueLen (%d)", ErrInvalidUnit, i, r.Key, len(r.Value), MaxValueLen)
		}
		if u.duplicate(seen, r.Key, i) {
			return fmt.Errorf("%w: %v appears twice", ErrInvalidUnit, r.Key)
		}
	}
	for i, k := range u.Deletes {
		if err := u.checkKey(k); err != nil {
			return fmt.Errorf("%w: delete %d: %w", ErrInvalidUnit, i, err)
		}
		if u.duplicate(seen, k, len(u.Puts)+i) {
			return fmt.Errorf("%w: %v appears twice", ErrInvalidUnit, k)
		}
	}
	return nil
}

// Creates reports whether u creates its group: a group unit built on
// Version 0 that does not delete the group. It may be as large as the
// group's whole state (a member joining a group of 50,000 writes several
// thousand records), so its bounds are MaxCreateUnitRecords and
// MaxCreateUnitBytes. A backend that cannot apply so large a unit in one
// atomic step may write its records first and make the group exist last
// (its version), having first removed whatever an earlier, interrupted
// creation left in the group's scope: no reader sees a group's records
// before the group exists.
func (u *Unit) Creates() bool {
	return u.Scope.IsGroup() && u.Version == 0 && !u.DeleteGroup
}

// Ops is the number of operations the unit counts against MaxUnitRecords:
// one per put, delete and prefix deletion, and one for DeleteGroup.
func (u *Unit) Ops() int {
	n := len(u.Puts) + len(u.Deletes) + len(u.DeletePrefixes)
	if u.DeleteGroup {
		n++
	}
	return n
}

// Bytes is the size the unit counts against MaxUnitBytes: the names and
// values it puts, and the names and prefixes it deletes.
func (u *Unit) Bytes() int {
	n := 0
	for _, r := range u.Puts {
		n += len(r.Key.Name) + len(r.Value)
	}
	for _, k := range u.Deletes {
		n += len(k.Name)
	}
	for _, p := range u.DeletePrefixes {
		n += len(p.Prefix)
	}
	return n
}

// smallUnit is the size up to which duplicates are found by comparing every
// pair, which is cheaper than building a map.
const smallUnit = 16

// duplicate reports whether k, the i-th key of the unit (puts first), appeared
// before. With seen nil it scans the keys before i.
func (u *Unit) duplicate(seen map[Key]struct{}, k Key, i int) bool {
	if seen != nil {
		if _, ok := seen[k]; ok {
			return true
		}
		seen[k] = struct{}{}
		return false
	}
	for j := 0; j < i; j++ {
		var o Key
		if j < len(u.Puts) {
			o = u.Puts[j].Key
		} else {
			o = u.Deletes[j-len(u.Puts)]
		}
		if o == k {
			return true
		}
	}
	return false
}

func (u *Unit) checkKey(k Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if err := u.checkScope(k.Scope, k); err != nil {
		return err
	}
	for _, p := range u.DeletePrefixes {
		if p.Covers(k) {
			return fmt.Errorf("%v falls under the deleted prefix %v", k, p)
		}
	}
	return nil
}

// checkScope checks that what, of scope s, may be in the unit.
func (u *Unit) checkScope(s Scope, what fmt.Stringer) error {
	if s.IsClient() {
		return nil
	}
	if s != u.Scope {
		return fmt.Errorf("%v is outside the unit's scope %v", what, u.Scope)
	}
	if u.DeleteGroup {
		return fmt.Errorf("%v is in the scope of a group the unit deletes", what)
	}
	return nil
}

// Limits every backend must accept and Validate enforces, so that an engine
// tested on the in-memory backend fits any backend. They are sized for
// NATS JetStream: an atomic batch holds at most 1000 messages of one stream
// (leaving room for the backend's own bookkeeping records), and a message at
// most 1 MiB by default (leaving room for sealing and headers).
const (
	// MaxUnitRecords bounds the operations of one unit (Unit.Ops). A prefix
	// or group deletion is one operation however many records it removes.
	MaxUnitRecords = 512
	// MaxUnitBytes bounds the bytes of one unit (Unit.Bytes). The engine's
	// operations on an existing group write a few KiB whatever its size.
	MaxUnitBytes = 16 << 20
	// MaxCreateUnitRecords and MaxCreateUnitBytes bound a unit that creates
	// its group (Unit.Creates): a group's whole state, written when a
	// member joins, creates or copies it, about 330 bytes and 0.15 records
	// per member; so 50,000 members are about 17 MB in 7,000 records.
	MaxCreateUnitRecords = 1 << 16
	MaxCreateUnitBytes   = 64 << 20
	// MaxValueLen bounds the length of one value in bytes.
	MaxValueLen = 256 << 10
	// MaxNameLen bounds the length of a record name in bytes.
	MaxNameLen = 256
	// MaxGroupIDLen bounds the length of a group id in bytes. RFC 9420
	// puts no bound on group_id; backends map ids into names of their own
	// (subjects, file names, table keys), which have limits.
	MaxGroupIDLen = 255
	// MaxReadKeys bounds the keys of one GetMany.
	MaxReadKeys = 512
	// RememberedUnits is how many of the last units applied to each scope
	// (group or client) a backend must recognize by ID when they are
	// applied again. A group's remembered units survive its deletion, so
	// that a retried deletion is recognized too.
	RememberedUnits = 16
)
