package group

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// RecordScope says whom a record belongs to: one group, or the client as a
// whole (key packages).
type RecordScope uint8

// The record scopes.
const (
	// GroupScope records belong to one group and die with it.
	GroupScope RecordScope = 1
	// ClientScope records belong to the client: key packages and their
	// private keys.
	ClientScope RecordScope = 2
)

// RecordClass separates public state from key material, so that a storage
// backend can keep them apart.
type RecordClass uint8

// The record classes.
const (
	// Public records hold state that is not secret: the group context,
	// the ratchet tree, transcript hashes, queued proposals.
	Public RecordClass = 1
	// KeyMaterial records hold secrets. A key-material record is
	// write-once: when a secret changes, it is written under a new name and
	// the old name is deleted, so every secret dies by an explicit
	// deletion.
	KeyMaterial RecordClass = 2
)

// String returns "public" or "key-material".
func (c RecordClass) String() string {
	switch c {
	case Public:
		return "public"
	case KeyMaterial:
		return "key-material"
	}
	return "RecordClass(" + strconv.Itoa(int(c)) + ")"
}

// RecordKey names a record.
type RecordKey struct {
	Scope RecordScope
	Class RecordClass
	// Name is made of segments of [A-Za-z0-9_=-] separated by "/".
	Name string
}

// Record is one piece of persisted state.
type Record struct {
	Scope RecordScope
	Class RecordClass
	Name  string
	// Value is the record's encoding. For KeyMaterial it holds secrets:
	// clear it once it has been stored.
	Value []byte
}

// Key returns the record's key.
func (r *Record) Key() RecordKey { return RecordKey{Scope: r.Scope, Class: r.Class, Name: r.Name} }

// Changes is what one or more operations changed in a group's persisted
// state: records to write and records to delete. Deletes of KeyMaterial
// are the secrets the protocol deleted (§9.2 and the rules in the package
// documentation); a storage layer must erase them. No key appears in both
// lists.
type Changes struct {
	Puts    []Record
	Deletes []RecordKey
	// DeletePrefixes delete every record of their scope and class whose
	// name starts with Name, which ends in "/": all the secrets of an
	// epoch that dies ("epoch/12/"), however many senders it had, so that
	// an operation's changes stay bounded. No put or delete falls under
	// one of them.
	DeletePrefixes []RecordKey
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Puts) == 0 && len(c.Deletes) == 0 && len(c.DeletePrefixes) == 0
}

// Deleted reports whether the changes delete k, by name or by prefix.
func (c *Changes) Deleted(k RecordKey) bool {
	return slices.Contains(c.Deletes, k) || slices.ContainsFunc(c.DeletePrefixes, func(p RecordKey) bool { return p.covers(k) })
}

// covers reports whether prefix p covers k.
func (p RecordKey) covers(k RecordKey) bool {
	return p.Scope == k.Scope && p.Class == k.Class && strings.HasPrefix(k.Name, p.Name)
}

// DeletedKeyMaterial returns the names of the deleted key-material
// records, and the deleted prefixes followed by "*", sorted.
func (c *Changes) DeletedKeyMaterial() []string {
	var out []string
	for _, k := range c.Deletes {
		if k.Class == KeyMaterial {
			out = append(out, k.Name)
		}
	}
	for _, k := range c.DeletePrefixes {
		if k.Class == KeyMaterial {
			out = append(out, k.Name+"*")
		}
	}
	slices.Sort(out)
	return out
}

// Clear overwrites the values of the key-material records.
func (c *Changes) Clear() {
	for i := range c.Puts {
		if c.Puts[i].Class == KeyMaterial {
			clear(c.Puts[i].Value)
		}
	}
}

// changeLog accumulates record changes until TakeChanges hands them out.
// Values are copied in (put) or handed over (own). A put followed by a
// delete of the same name leaves only the delete (the backend ignores
// deletes of missing records); a delete followed by a put of a public
// record leaves only the put. A prefix deletion drops the puts and
// deletes under it. Names under a deleted prefix are not written again
// (epochs only grow), so a put never follows its prefix's deletion.
type changeLog struct {
	puts     map[RecordKey][]byte
	dels     map[RecordKey]struct{}
	prefixes map[RecordKey]struct{}
}

func newChangeLog() *changeLog {
	return &changeLog{puts: map[RecordKey][]byte{}, dels: map[RecordKey]struct{}{}, prefixes: map[RecordKey]struct{}{}}
}

// delPrefix deletes every record of scope and class whose name starts
// with prefix (which ends in "/").
func (l *changeLog) delPrefix(scope RecordScope, class RecordClass, prefix string) {
	if l == nil {
		return
	}
	p := RecordKey{scope, class, prefix}
	for k, v := range l.puts {
		if p.covers(k) {
			if class == KeyMaterial {
				clear(v)
			}
			delete(l.puts, k)
		}
	}
	for k := range l.dels {
		if p.covers(k) {
			delete(l.dels, k)
		}
	}
	l.prefixes[p] = struct{}{}
}

// underPrefix reports whether k falls under a prefix deleted in the log.
func (l *changeLog) underPrefix(k RecordKey) bool {
	for p := range l.prefixes {
		if p.covers(k) {
			return true
		}
	}
	return false
}

func (l *changeLog) put(scope RecordScope, class RecordClass, name string, value []byte) {
	if l == nil {
		return
	}
	k := RecordKey{scope, class, name}
	if old, ok := l.puts[k]; ok && class == KeyMaterial {
		clear(old)
	}
	delete(l.dels, k)
	l.puts[k] = append([]byte{}, value...)
}

// own is put for a value the caller hands over, such as an envelope of
// key material: the log keeps it instead of a copy, so that no second copy
// of its secrets exists. Without a log, key material is cleared.
func (l *changeLog) own(scope RecordScope, class RecordClass, name string, value []byte) {
	if l == nil {
		if class == KeyMaterial {
			clear(value)
		}
		return
	}
	k := RecordKey{scope, class, name}
	if old, ok := l.puts[k]; ok && class == KeyMaterial {
		clear(old)
	}
	delete(l.dels, k)
	l.puts[k] = value
}

func (l *changeLog) del(scope RecordScope, class RecordClass, name string) {
	if l == nil {
		return
	}
	k := RecordKey{scope, class, name}
	if old, ok := l.puts[k]; ok {
		if class == KeyMaterial {
			clear(old)
		}
		delete(l.puts, k)
	}
	if !l.underPrefix(k) {
		l.dels[k] = struct{}{}
	}
}

// take returns the accumulated changes in a stable order and empties the
// log.
func (l *changeLog) take() Changes {
	var c Changes
	for k, v := range l.puts {
		c.Puts = append(c.Puts, Record{Scope: k.Scope, Class: k.Class, Name: k.Name, Value: v})
	}
	for k := range l.dels {
		c.Deletes = append(c.Deletes, k)
	}
	for k := range l.prefixes {
		c.DeletePrefixes = append(c.DeletePrefixes, k)
	}
	slices.SortFunc(c.Puts, func(a, b Record) int { return compareKeys(a.Key(), b.Key()) })
	slices.SortFunc(c.Deletes, compareKeys)
	slices.SortFunc(c.DeletePrefixes, compareKeys)
	l.puts = map[RecordKey][]byte{}
	l.dels = map[RecordKey]struct{}{}
	l.prefixes = map[RecordKey]struct{}{}
	return c
}

// discard clears and drops the accumulated changes.
func (l *changeLog) discard() {
	c := l.take()
	c.Clear()
}

func compareKeys(a, b RecordKey) int {
	return cmp.Or(cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.Class, b.Class), strings.Compare(a.Name, b.Name))
}
