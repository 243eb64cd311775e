package storage

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
)

// Backend stores records. Implementations must be safe for concurrent use by
// multiple goroutines and must pass storagetest.Run. The package
// documentation states the contract in full; in short:
//
//   - Apply applies a whole Unit or nothing, fenced by the group's version,
//     and recognizes a retried unit by its ID.
//   - Load returns a consistent snapshot of one group: all its records of both
//     classes at one version; Version reads the version alone.
//   - Get, GetMany and List read single records, sets and ranges, mostly
//     client-wide ones; they are not snapshots.
//   - Values are copied in and out: the backend keeps no slice the caller
//     passed, and the caller owns every slice the backend returns.
//   - Every method returns ctx.Err() (possibly wrapped) if ctx is done before
//     the operation takes effect; a cancelled Apply applies nothing, or ends
//     with ErrUnknownOutcome if it cannot tell.
type Backend interface {
	// Apply applies u atomically and returns the group's new version.
	//
	// It first rejects a unit that Validate rejects (ErrInvalidUnit). If
	// u.ID is not zero and names one of the last RememberedUnits units
	// applied to u.Scope (a retry after ErrUnknownOutcome or a lost reply),
	// it applies nothing and returns the version that unit produced, with a
	// nil error. Otherwise, for a group unit it compares u.Version with the
	// group's stored version (0 when the group does not exist) and fails
	// with ErrConflict if they differ. It fails with ErrWriteOnce if a put
	// of KeyMaterial names a record that exists. Otherwise it applies the
	// unit (Validate ensures no key is both put and deleted, nor put or
	// deleted under a deleted prefix, so order within it does not matter)
	// and returns the group's new version: nonzero, greater than every
	// version the group id had before, even one from before the group was
	// deleted and created anew. A unit that deletes its group, and a client
	// unit, return 0.
	//
	// On ErrUnknownOutcome the unit was applied entirely or not at all and
	// the backend cannot tell which (a timeout, a lost connection, a
	// failover); applying the same unit again (same ID) tells: it is
	// applied then, or recognized as applied. On any other error nothing is
	// applied. After a crash at any point a later read sees either none of
	// the unit or all of it. Apply neither keeps nor modifies u.
	Apply(ctx context.Context, u *Unit) (version uint64, err error)

	// Load returns every record of the group (both classes, no client-wide
	// record) and the version they belong to, sorted by Key.Compare. A group
	// that does not exist gives ErrGroupNotFound; a group that exists but
	// holds no record gives an empty GroupRecords and a nil error.
	Load(ctx context.Context, groupID []byte) (*GroupRecords, error)

	// Version returns the group's stored version, as Load would report it,
	// in one cheap request: a cached copy of the group is current exactly
	// when its version is this one. A group that does not exist gives
	// ErrGroupNotFound.
	Version(ctx context.Context, groupID []byte) (uint64, error)

	// Get returns the value of one record, or ErrNotFound.
	Get(ctx context.Context, k Key) ([]byte, error)

	// GetMany returns the records of keys that exist, in one request, sorted
	// by Key.Compare; keys that name no record are left out (no error).
	// At most MaxReadKeys keys, each valid (ErrInvalidKey otherwise);
	// duplicates are returned once.
	GetMany(ctx context.Context, keys []Key) ([]Record, error)

	// List returns the records of one scope and class whose names start with
	// prefix, sorted by name. Prefix is "" (every record) or whole name
	// segments followed by "/" ("key-package/"). An empty result is not an
	// error, even for a group that does not exist.
	List(ctx context.Context, scope Scope, class Class, prefix string) ([]Record, error)
}

// Inspector is an optional interface of a Backend, detected by type
// assertion, that lets tests look at what the backend really retains. The
// conformance suite uses it to check that deleted key material is gone; the
// engine's forward-secrecy tests use it the same way.
type Inspector interface {
	// RawContents returns everything someone who seized the backend now
	// could read: every byte string the backend holds (files, blocks, logs,
	// indexes, in-memory copies), together with whatever the backend can
	// itself decrypt from them using keys it still holds. The live values of
	// every record must appear in it verbatim; a value that was deleted, or
	// that belongs to a unit that was rejected, must not.
	RawContents(ctx context.Context) ([][]byte, error)
}

// Class is the kind of a record. A backend may keep the two classes in
// different places (different tables, buckets or devices), but a unit spans
// both atomically.
type Class uint8

const (
	// Public is group state that is not secret to the group's members: group
	// context, ratchet tree nodes, interim transcript hash, confirmation tag,
	// join configuration, own leaf index and leaf nodes, queued proposals,
	// public parts of key packages. Public records may be overwritten.
	Public Class = 1
	// KeyMaterial is anything whose disclosure breaks confidentiality or
	// authentication: message and epoch secrets, resumption PSKs, HPKE
	// private keys of epochs, pending updates and key packages, external
	// PSKs, signature private keys. KeyMaterial records are write-once: a put
	// to a name that holds one fails with ErrWriteOnce; they leave only by
	// deletion, which backends must make irrevocable.
	KeyMaterial Class = 2
)

// String returns "public", "key-material" or "Class(n)".
func (c Class) String() string {
	switch c {
	case Public:
		return "public"
	case KeyMaterial:
		return "key-material"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Valid reports whether c is Public or KeyMaterial.
func (c Class) Valid() bool { return c == Public || c == KeyMaterial }

type scopeKind uint8

const (
	scopeZero scopeKind = iota
	scopeClient
	scopeGroup
)

// Scope says whose record a key names: one group's, or the client's. Build
// one with GroupScope or ClientScope; the zero Scope is invalid, so a
// forgotten scope is an error rather than a silent write to client scope.
// Scopes are comparable and may be used as map keys.
type Scope struct {
	kind scopeKind
	id   string
}

// ClientScope is the scope of records that belong to the client rather than
// one group: key packages, external PSKs, signature key pairs, and anything
// else that outlives or precedes a group.
func ClientScope() Scope { return Scope{kind: scopeClient} }

// GroupScope is the scope of one group's records. Any byte string is a group
// id, the empty one included (RFC 9420 §8.1 puts no bound on group_id); a
// nil and an empty id name the same group. The id is copied.
//
// Keys and units accept group ids of at most MaxGroupIDLen bytes.
func GroupScope(groupID []byte) Scope { return Scope{kind: scopeGroup, id: string(groupID)} }

// IsClient reports whether s is the client scope.
func (s Scope) IsClient() bool { return s.kind == scopeClient }

// IsGroup reports whether s is a group's scope.
func (s Scope) IsGroup() bool { return s.kind == scopeGroup }

// GroupID returns a copy of the group id, non-nil for a group scope (even
// an empty id), and nil for any other scope.
func (s Scope) GroupID() []byte {
	if s.kind != scopeGroup {
		return nil
	}
	return []byte(s.id)
}

// String returns "client", "group:" followed by the id in hex (cut after 32
// bytes), or "invalid".
func (s Scope) String() string {
	switch s.kind {
	case scopeClient:
		return "client"
	case scopeGroup:
		if len(s.id) > 32 {
			return "group:" + hex.EncodeToString([]byte(s.id[:32])) + "...(" + strconv.Itoa(len(s.id)) + " bytes)"
		}
		return "group:" + hex.EncodeToString([]byte(s.id))
	}
	return "invalid"
}

// validate checks that s is a client scope or a group scope with an id of
// at most MaxGroupIDLen bytes.
func (s Scope) validate() error {
	switch {
	case s.kind == scopeZero:
		return fmt.Errorf("%w: zero Scope (use GroupScope or ClientScope)", ErrInvalidKey)
	case len(s.id) > MaxGroupIDLen:
		return fmt.Errorf("%w: group id of %d bytes, more than MaxGroupIDLen (%d)", ErrInvalidKey, len(s.id), MaxGroupIDLen)
	}
	return nil
}

// ValidateGroupID checks a group id against MaxGroupIDLen; the error matches
// ErrInvalidKey. Backends call it first in Load and Version.
func ValidateGroupID(groupID []byte) error { return GroupScope(groupID).validate() }

// compare orders client before groups, and groups by id bytes.
func (s Scope) compare(o Scope) int {
	if c := cmp.Compare(s.kind, o.kind); c != 0 {
		return c
	}
	return strings.Compare(s.id, o.id)
}

// Key addresses one record. Keys are comparable and may be used as map keys.
type Key struct {
	// Scope is the group the record belongs to, or the client.
	Scope Scope
	// Class is Public or KeyMaterial. The same name in the two classes
	// names two different records.
	Class Class
	// Name is chosen by the engine: one or more segments separated by "/",
	// each of the characters A-Z a-z 0-9 - _ =, at most MaxNameLen bytes in
	// all ("tree/node/17", "epoch/12/secrets").
	Name string
}

// Validate checks the key against the rules above; the error matches
// ErrInvalidKey.
func (k Key) Validate() error {
	if err := k.Scope.validate(); err != nil {
		return err
	}
	if !k.Class.Valid() {
		return fmt.Errorf("%w: %v", ErrInvalidKey, k.Class)
	}
	return validName(k.Name)
}

// Compare orders keys by scope (client first, then groups by id bytes), then
// class (Public first), then name bytes. Load and List return records in this
// order.
func (k Key) Compare(o Key) int {
	if c := k.Scope.compare(o.Scope); c != 0 {
		return c
	}
	if c := cmp.Compare(k.Class, o.Class); c != 0 {
		return c
	}
	return strings.Compare(k.Name, o.Name)
}

// String returns scope/class/name, for example "group:0a0b/public/tree/node/3".
func (k Key) String() string {
	return k.Scope.String() + "/" + k.Class.String() + "/" + k.Name
}

// Record is one stored value under its key. Its String, GoString, Format and
// LogValue never show the value, only its length: Record values are often key
// material, and the package cannot know which public ones are sensitive to
// the application.
type Record struct {
	// Key addresses the record.
	Key Key
	// Value is the record's content, opaque to the backend; empty is
	// allowed. Backends copy it on the way in and out.
	Value []byte
}

// String shows the key and the value's length.
func (r Record) String() string {
	return "{" + r.Key.String() + " (" + strconv.Itoa(len(r.Value)) + " bytes)}"
}

// GoString shows the key and the value's length.
func (r Record) GoString() string { return "storage.Record" + r.String() }

// Format prints String for every verb, so %x and %v do not print the value.
func (r Record) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(r.GoString()))
		return
	}
	_, _ = f.Write([]byte(r.String()))
}

// LogValue shows the key and the value's length in log/slog output.
func (r Record) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key", r.Key.String()), slog.Int("len", len(r.Value)))
}

// SortRecords sorts rs by Key.Compare, the order Load and List return. It is
// for backends whose storage does not return records in that order.
func SortRecords(rs []Record) {
	slices.SortFunc(rs, func(a, b Record) int { return a.Key.Compare(b.Key) })
}

// GroupRecords is a group's state as Load returns it: all its records at one
// version.
type GroupRecords struct {
	// Version is the group's version these records belong to. Put it in the
	// next Unit to change the group.
	Version uint64
	// Records are the group's records of both classes, sorted by
	// Key.Compare (Public before KeyMaterial, then by name). The caller owns
	// them.
	Records []Record
}

// Find returns the value of the record with the given class and name, using
// the order of Records.
func (g *GroupRecords) Find(class Class, name string) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(g.Records, Key{Class: class, Name: name}, func(r Record, k Key) int {
		if c := cmp.Compare(r.Key.Class, k.Class); c != 0 {
			return c
		}
		return strings.Compare(r.Key.Name, k.Name)
	})
	if !ok {
		return nil, false
	}
	return g.Records[i].Value, true
}

// ClearKeyMaterial overwrites the values of the KeyMaterial records with
// zeros and drops them. Call it once the key material has been decoded into
// the engine's own secret types, so that no second copy lingers until the
// garbage collector runs. Like every clearing in Go this is best effort: the
// runtime may have copied the bytes before.
func (g *GroupRecords) ClearKeyMaterial() {
	for i := range g.Records {
		if g.Records[i].Key.Class == KeyMaterial {
			clear(g.Records[i].Value)
			g.Records[i].Value = nil
		}
	}
}

func validName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidKey)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: name of %d bytes, more than MaxNameLen (%d)", ErrInvalidKey, len(name), MaxNameLen)
	}
	return validSegments(name)
}

// validSegments checks s is one or more non-empty segments of name
// characters separated by single slashes.
func validSegments(s string) error {
	prev := byte('/')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			if prev == '/' {
				return fmt.Errorf("%w: empty segment in name %q", ErrInvalidKey, s)
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '=':
		default:
			return fmt.Errorf("%w: byte %#02x at %d in name %q", ErrInvalidKey, c, i, s)
		}
		prev = c
	}
	if prev == '/' {
		return fmt.Errorf("%w: name %q ends with a slash", ErrInvalidKey, s)
	}
	return nil
}

func validPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxNameLen {
		return fmt.Errorf("%w: prefix of %d bytes, more than MaxNameLen (%d)", ErrInvalidKey, len(prefix), MaxNameLen)
	}
	body, ok := strings.CutSuffix(prefix, "/")
	if !ok {
		return fmt.Errorf("%w: prefix %q does not end with a slash", ErrInvalidKey, prefix)
	}
	return validSegments(body)
}

// ValidateList checks the arguments of Backend.List: a valid scope and class,
// and a prefix that is "" or one or more whole name segments followed by "/".
// The error matches ErrInvalidKey. Backends call it first in List.
func ValidateList(scope Scope, class Class, prefix string) error {
	if err := scope.validate(); err != nil {
		return err
	}
	if !class.Valid() {
		return fmt.Errorf("%w: %v", ErrInvalidKey, class)
	}
	return validPrefix(prefix)
}

// ValidateGetMany checks the arguments of Backend.GetMany: at most
// MaxReadKeys keys, each valid. The error matches ErrInvalidKey. Backends
// call it first in GetMany.
func ValidateGetMany(keys []Key) error {
	if len(keys) > MaxReadKeys {
		return fmt.Errorf("%w: %d keys, more than MaxReadKeys (%d)", ErrInvalidKey, len(keys), MaxReadKeys)
	}
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			return err
		}
	}
	return nil
}
