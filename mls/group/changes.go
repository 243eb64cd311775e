package group

import (
	"cmp"
	"slices"
	"strings"

	"github.com/mlsengine/mlsengine/storage"
)

// Changes is what one or more operations changed in a group's persisted
// state, in storage's types: records to write and records to delete, the
// body of one storage.Unit. Deletes of KeyMaterial are the secrets the
// protocol deleted (§9.2 and the rules in the package documentation); a
// storage layer must erase them. No key appears in both lists.
type Changes struct {
	Puts    []storage.Record
	Deletes []storage.Key
	// DeletePrefixes delete every record of their scope and class whose
	// name starts with the prefix: all the secrets of an epoch that dies
	// ("epoch/12/"), however many senders it had, so that an operation's
	// changes stay bounded. No put or delete falls under one of them.
	DeletePrefixes []storage.KeyPrefix
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Puts) == 0 && len(c.Deletes) == 0 && len(c.DeletePrefixes) == 0
}

// Deleted reports whether the changes delete k, by name or by prefix.
func (c *Changes) Deleted(k storage.Key) bool {
	return slices.Contains(c.Deletes, k) || slices.ContainsFunc(c.DeletePrefixes, func(p storage.KeyPrefix) bool { return p.Covers(k) })
}

// DeletedKeyMaterial returns the names of the deleted key-material
// records, and the deleted prefixes followed by "*", sorted.
func (c *Changes) DeletedKeyMaterial() []string {
	var out []string
	for _, k := range c.Deletes {
		if k.Class == storage.KeyMaterial {
			out = append(out, k.Name)
		}
	}
	for _, p := range c.DeletePrefixes {
		if p.Class == storage.KeyMaterial {
			out = append(out, p.Prefix+"*")
		}
	}
	slices.Sort(out)
	return out
}

// Clear overwrites the values of the key-material records.
func (c *Changes) Clear() {
	clearRecords(c.Puts)
}

// clearRecords overwrites the values of the key-material records of rs.
func clearRecords(rs []storage.Record) {
	for i := range rs {
		if rs[i].Key.Class == storage.KeyMaterial {
			clear(rs[i].Value)
		}
	}
}

// logScope says whose record the log names: the group's (whose id the
// log learns when its changes are taken) or the client's (key packages).
type logScope bool

const (
	groupScope  logScope = false
	clientScope logScope = true
)

// logKey names a record in the log.
type logKey struct {
	scope logScope
	class storage.Class
	name  string
}

func (k logKey) covers(o logKey) bool {
	return k.scope == o.scope && k.class == o.class && strings.HasPrefix(o.name, k.name)
}

// storageKey is k in the scope of the group groupID.
func (k logKey) storageKey(groupID []byte) storage.Key {
	s := storage.ClientScope()
	if k.scope == groupScope {
		s = storage.GroupScope(groupID)
	}
	return storage.Key{Scope: s, Class: k.class, Name: k.name}
}

// changeLog accumulates record changes until TakeChanges hands them out.
// Values are copied in (put) or handed over (own). A put followed by a
// delete of the same name leaves only the delete (the backend ignores
// deletes of missing records); a delete followed by a put of a public
// record leaves only the put. A prefix deletion drops the puts and
// deletes under it. Names under a deleted prefix are not written again
// (epochs only grow), so a put never follows its prefix's deletion.
type changeLog struct {
	puts     map[logKey][]byte
	dels     map[logKey]struct{}
	prefixes map[logKey]struct{}
}

func newChangeLog() *changeLog {
	return &changeLog{puts: map[logKey][]byte{}, dels: map[logKey]struct{}{}, prefixes: map[logKey]struct{}{}}
}

// delPrefix deletes every record of scope and class whose name starts
// with prefix (which ends in "/").
func (l *changeLog) delPrefix(scope logScope, class storage.Class, prefix string) {
	if l == nil {
		return
	}
	p := logKey{scope, class, prefix}
	for k, v := range l.puts {
		if p.covers(k) {
			if class == storage.KeyMaterial {
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
func (l *changeLog) underPrefix(k logKey) bool {
	for p := range l.prefixes {
		if p.covers(k) {
			return true
		}
	}
	return false
}

func (l *changeLog) put(scope logScope, class storage.Class, name string, value []byte) {
	if l == nil {
		return
	}
	l.own(scope, class, name, append([]byte{}, value...))
}

// own is put for a value the caller hands over, such as an envelope of
// key material: the log keeps it instead of a copy, so that no second copy
// of its secrets exists. Without a log, key material is cleared.
func (l *changeLog) own(scope logScope, class storage.Class, name string, value []byte) {
	if l == nil {
		if class == storage.KeyMaterial {
			clear(value)
		}
		return
	}
	k := logKey{scope, class, name}
	if old, ok := l.puts[k]; ok && class == storage.KeyMaterial {
		clear(old)
	}
	delete(l.dels, k)
	l.puts[k] = value
}

func (l *changeLog) del(scope logScope, class storage.Class, name string) {
	if l == nil {
		return
	}
	k := logKey{scope, class, name}
	if old, ok := l.puts[k]; ok {
		if class == storage.KeyMaterial {
			clear(old)
		}
		delete(l.puts, k)
	}
	if !l.underPrefix(k) {
		l.dels[k] = struct{}{}
	}
}

// take returns the accumulated changes, in the scope of the group
// groupID and sorted by storage.Key.Compare, and empties the log.
func (l *changeLog) take(groupID []byte) Changes {
	var c Changes
	for k, v := range l.puts {
		c.Puts = append(c.Puts, storage.Record{Key: k.storageKey(groupID), Value: v})
	}
	for k := range l.dels {
		c.Deletes = append(c.Deletes, k.storageKey(groupID))
	}
	for k := range l.prefixes {
		sk := k.storageKey(groupID)
		c.DeletePrefixes = append(c.DeletePrefixes, storage.KeyPrefix{Scope: sk.Scope, Class: sk.Class, Prefix: sk.Name})
	}
	storage.SortRecords(c.Puts)
	slices.SortFunc(c.Deletes, storage.Key.Compare)
	slices.SortFunc(c.DeletePrefixes, func(a, b storage.KeyPrefix) int {
		return cmp.Or(storage.Key{Scope: a.Scope, Class: a.Class}.Compare(storage.Key{Scope: b.Scope, Class: b.Class}), strings.Compare(a.Prefix, b.Prefix))
	})
	l.puts = map[logKey][]byte{}
	l.dels = map[logKey]struct{}{}
	l.prefixes = map[logKey]struct{}{}
	return c
}

// discard clears and drops the accumulated changes.
func (l *changeLog) discard() {
	c := l.take(nil)
	c.Clear()
}
