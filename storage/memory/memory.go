// Package memory is an in-memory storage.Backend, for tests and for
// embedding mlsengine in a process that keeps its groups only while it runs.
//
//	var b storage.Backend = memory.New()
//
// It implements the whole storage contract and passes storagetest.Run:
// units apply atomically under one lock, a group's versions come from a
// counter shared by all groups (so a version is never reused, even when a
// group is deleted and created again), and values are copied in and out.
//
// It enforces the same limits and rules as every other backend
// (storage.Unit.Validate), so an engine tested against it fits a persistent
// backend too.
//
// Every value it drops, by Delete, DeleteGroup or an overwrite of a Public
// record, is overwritten with zeros first, and it never hands out its own
// slices, so no copy it made survives. In Go this is best effort: the
// runtime may have copied the bytes before, and the caller's own copies
// (the slices it passed to Apply and got from Load) are the caller's to clear.
// Nothing is persisted: the contents are lost when the process exits.
//
// The Backend implements storage.Inspector: RawContents returns every group
// id, name and value it holds, so tests can check that deleted key material
// is gone.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/mlsengine/mlsengine/storage"
)

// Backend is an in-memory storage.Backend. The zero value is empty and ready
// to use; a Backend must not be copied after first use. It is safe for
// concurrent use: loads of any groups run in parallel, units are applied one
// at a time.
type Backend struct {
	mu     sync.RWMutex
	last   uint64 // the last version handed out, to any group
	groups map[storage.Scope]*group
	client map[rkey][]byte
	// applied remembers the last storage.RememberedUnits units applied to
	// each scope, so that a retry is recognized; a deleted group's entry
	// stays, so that a retried deletion is recognized too.
	applied map[storage.Scope]*recent
}

// recent is a ring of the last units applied to one scope.
type recent struct {
	ids      [storage.RememberedUnits]storage.UnitID
	versions [storage.RememberedUnits]uint64
	next     int
}

func (r *recent) find(id storage.UnitID) (uint64, bool) {
	for i, x := range r.ids {
		if x == id {
			return r.versions[i], true
		}
	}
	return 0, false
}

func (r *recent) add(id storage.UnitID, v uint64) {
	r.ids[r.next], r.versions[r.next] = id, v
	r.next = (r.next + 1) % len(r.ids)
}

var (
	_ storage.Backend   = (*Backend)(nil)
	_ storage.Inspector = (*Backend)(nil)
)

// rkey is a record's key within one scope.
type rkey struct {
	class storage.Class
	name  string
}

func (a rkey) compare(b rkey) int {
	if c := cmp.Compare(a.class, b.class); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

type group struct {
	version uint64
	recs    map[rkey]*entry
	// sorted holds the entries of recs in key order, so that Load neither
	// hashes nor sorts. Apply keeps it current, under the write lock.
	sorted []*entry
	// bytes is the total length of the values of each class, to size Load's
	// buffers.
	bytes [3]int
}

type entry struct {
	key  rkey
	v    []byte
	dead bool // deleted by the unit being applied
}

func (a *entry) compare(b *entry) int { return a.key.compare(b.key) }

// smallReindex is the number of added entries up to which reindex splices
// them in place.
const smallReindex = 16

// reindex rebuilds g.sorted after a unit added the entries in added (in any
// order) and marked others dead. A unit of a few records (a message's)
// is spliced in place, without a copy of the index; a larger one is
// merged into a new index, linear in the group's size.
func (g *group) reindex(added []*entry) {
	slices.SortFunc(added, (*entry).compare)
	if len(added) <= smallReindex {
		live := g.sorted[:0]
		for _, e := range g.sorted {
			if !e.dead {
				live = append(live, e)
			}
		}
		clear(g.sorted[len(live):])
		g.sorted = live
		for _, e := range added {
			i, _ := slices.BinarySearchFunc(g.sorted, e, (*entry).compare)
			g.sorted = slices.Insert(g.sorted, i, e)
		}
		return
	}
	out := make([]*entry, 0, len(g.recs))
	old := g.sorted
	for len(old) > 0 || len(added) > 0 {
		if len(old) > 0 && old[0].dead {
			old = old[1:]
			continue
		}
		if len(added) == 0 || (len(old) > 0 && old[0].compare(added[0]) < 0) {
			out = append(out, old[0])
			old = old[1:]
		} else {
			out = append(out, added[0])
			added = added[1:]
		}
	}
	g.sorted = out
}

// deletePrefix erases and removes the records of class whose names start
// with prefix, and reports whether there were any. The records are a range
// of g.sorted.
func (g *group) deletePrefix(class storage.Class, prefix string) bool {
	i, _ := slices.BinarySearchFunc(g.sorted, rkey{class, prefix}, func(e *entry, k rkey) int { return e.key.compare(k) })
	found := false
	for _, e := range g.sorted[i:] {
		if e.key.class != class || !strings.HasPrefix(e.key.name, prefix) {
			break
		}
		g.bytes[class] -= len(e.v)
		clear(e.v)
		e.v, e.dead = nil, true
		delete(g.recs, e.key)
		found = true
	}
	return found
}

// New returns an empty Backend.
func New() *Backend { return new(Backend) }

// Apply applies u atomically; see storage.Backend.
func (b *Backend) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := u.Validate(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Waiting for the lock may have taken long enough for ctx to end; this
	// is the last point at which giving up leaves nothing applied.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !u.ID.IsZero() {
		if r := b.applied[u.Scope]; r != nil {
			if v, ok := r.find(u.ID); ok {
				return v, nil
			}
		}
	}
	g, err := b.check(u)
	if err != nil {
		return 0, err
	}
	v := b.commit(u, g)
	if !u.ID.IsZero() {
		if b.applied == nil {
			b.applied = make(map[storage.Scope]*recent)
		}
		r := b.applied[u.Scope]
		if r == nil {
			r = new(recent)
			b.applied[u.Scope] = r
		}
		r.add(u.ID, v)
	}
	return v, nil
}

// check finds every reason to refuse u, before anything changes. It returns
// the unit's group, nil for a client unit or a group that does not exist.
func (b *Backend) check(u *storage.Unit) (*group, error) {
	var g *group
	if u.Scope.IsGroup() {
		g = b.groups[u.Scope]
		switch {
		case g == nil && u.Version != 0:
			return nil, fmt.Errorf("%w: group %v does not exist, the unit expects version %d", storage.ErrConflict, u.Scope, u.Version)
		case g != nil && g.version != u.Version:
			return nil, fmt.Errorf("%w: group %v is at version %d, the unit expects %d", storage.ErrConflict, u.Scope, g.version, u.Version)
		}
	}
	for _, r := range u.Puts {
		if r.Key.Class != storage.KeyMaterial {
			continue
		}
		rk := rkey{r.Key.Class, r.Key.Name}
		var exists bool
		if r.Key.Scope.IsClient() {
			_, exists = b.client[rk]
		} else if g != nil {
			_, exists = g.recs[rk]
		}
		if exists {
			return nil, fmt.Errorf("%w: %v", storage.ErrWriteOnce, r.Key)
		}
	}
	return g, nil
}

// commit applies a checked unit; it cannot fail. Every value it drops is
// cleared first.
func (b *Backend) commit(u *storage.Unit, g *group) uint64 {
	if u.DeleteGroup {
		if g != nil {
			for _, e := range g.recs {
				clear(e.v)
				e.v = nil
			}
			delete(b.groups, u.Scope)
			g = nil
		}
	} else if u.Scope.IsGroup() && g == nil {
		g = &group{recs: make(map[rkey]*entry)}
		if b.groups == nil {
			b.groups = make(map[storage.Scope]*group)
		}
		b.groups[u.Scope] = g
	}
	if b.client == nil {
		b.client = make(map[rkey][]byte)
	}

	removed := false
	for _, p := range u.DeletePrefixes {
		if p.Scope.IsClient() {
			for rk, v := range b.client {
				if rk.class == p.Class && strings.HasPrefix(rk.name, p.Prefix) {
					clear(v)
					delete(b.client, rk)
				}
			}
		} else if g.deletePrefix(p.Class, p.Prefix) {
			removed = true
		}
	}
	for _, k := range u.Deletes {
		rk := rkey{k.Class, k.Name}
		if k.Scope.IsClient() {
			if v, ok := b.client[rk]; ok {
				clear(v)
				delete(b.client, rk)
			}
		} else if e, ok := g.recs[rk]; ok {
			g.bytes[k.Class] -= len(e.v)
			clear(e.v)
			e.v, e.dead = nil, true
			delete(g.recs, rk)
			removed = true
		}
	}
	var added []*entry
	for _, r := range u.Puts {
		rk := rkey{r.Key.Class, r.Key.Name}
		v := make([]byte, len(r.Value))
		copy(v, r.Value)
		if r.Key.Scope.IsClient() {
			if old, ok := b.client[rk]; ok {
				clear(old)
			}
			b.client[rk] = v
		} else if e, ok := g.recs[rk]; ok {
			g.bytes[r.Key.Class] += len(v) - len(e.v)
			clear(e.v)
			e.v = v
		} else {
			e := &entry{key: rk, v: v}
			g.recs[rk] = e
			g.bytes[r.Key.Class] += len(v)
			added = append(added, e)
		}
	}

	if g == nil {
		return 0
	}
	if removed || len(added) > 0 {
		g.reindex(added)
	}
	b.last++
	g.version = b.last
	return g.version
}

// Load returns a copy of the group's records; see storage.Backend. The values
// of each class share one allocation, so the public values a caller keeps do
// not keep copies of key material alive.
func (b *Backend) Load(ctx context.Context, groupID []byte) (*storage.GroupRecords, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := storage.ValidateGroupID(groupID); err != nil {
		return nil, err
	}
	scope := storage.GroupScope(groupID)
	b.mu.RLock()
	defer b.mu.RUnlock()
	g := b.groups[scope]
	if g == nil {
		return nil, fmt.Errorf("%w: %v", storage.ErrGroupNotFound, scope)
	}
	out := &storage.GroupRecords{Version: g.version, Records: make([]storage.Record, len(g.sorted))}
	var bufs [3][]byte
	for c := storage.Public; c <= storage.KeyMaterial; c++ {
		if g.bytes[c] > 0 {
			bufs[c] = make([]byte, 0, g.bytes[c])
		}
	}
	for i, e := range g.sorted {
		k, v := e.key, e.v
		buf := bufs[k.class]
		n := len(buf)
		buf = append(buf, v...)
		bufs[k.class] = buf
		// A full slice expression, so that appending to one value cannot
		// write into the next.
		out.Records[i] = storage.Record{
			Key:   storage.Key{Scope: scope, Class: k.class, Name: k.name},
			Value: buf[n:len(buf):len(buf)],
		}
	}
	return out, nil
}

// Version returns the group's version; see storage.Backend.
func (b *Backend) Version(ctx context.Context, groupID []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := storage.ValidateGroupID(groupID); err != nil {
		return 0, err
	}
	scope := storage.GroupScope(groupID)
	b.mu.RLock()
	defer b.mu.RUnlock()
	g := b.groups[scope]
	if g == nil {
		return 0, fmt.Errorf("%w: %v", storage.ErrGroupNotFound, scope)
	}
	return g.version, nil
}

// GetMany returns copies of the values of the keys that exist; see
// storage.Backend.
func (b *Backend) GetMany(ctx context.Context, keys []storage.Key) ([]storage.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := storage.ValidateGetMany(keys); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]storage.Record, 0, len(keys))
	for _, k := range keys {
		if v, ok := b.lookup(k); ok {
			out = append(out, storage.Record{Key: k, Value: append(make([]byte, 0, len(v)), v...)})
		}
	}
	storage.SortRecords(out)
	return slices.CompactFunc(out, func(a, b storage.Record) bool { return a.Key == b.Key }), nil
}

// lookup returns the stored value of k, under the read lock.
func (b *Backend) lookup(k storage.Key) ([]byte, bool) {
	rk := rkey{k.Class, k.Name}
	if k.Scope.IsClient() {
		v, ok := b.client[rk]
		return v, ok
	}
	g := b.groups[k.Scope]
	if g == nil {
		return nil, false
	}
	e, ok := g.recs[rk]
	if !ok {
		return nil, false
	}
	return e.v, true
}

// Get returns a copy of one value; see storage.Backend.
func (b *Backend) Get(ctx context.Context, k storage.Key) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := k.Validate(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	m := b.client
	if k.Scope.IsGroup() {
		g := b.groups[k.Scope]
		if g == nil {
			return nil, fmt.Errorf("%w: %v (%w)", storage.ErrNotFound, k, storage.ErrGroupNotFound)
		}
		e, ok := g.recs[rkey{k.Class, k.Name}]
		if !ok {
			return nil, fmt.Errorf("%w: %v", storage.ErrNotFound, k)
		}
		return append(make([]byte, 0, len(e.v)), e.v...), nil
	}
	v, ok := m[rkey{k.Class, k.Name}]
	if !ok {
		return nil, fmt.Errorf("%w: %v", storage.ErrNotFound, k)
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

// List returns copies of the matching records; see storage.Backend.
func (b *Backend) List(ctx context.Context, scope storage.Scope, class storage.Class, prefix string) ([]storage.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := storage.ValidateList(scope, class, prefix); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []storage.Record
	add := func(k rkey, v []byte) {
		if k.class == class && strings.HasPrefix(k.name, prefix) {
			out = append(out, storage.Record{
				Key:   storage.Key{Scope: scope, Class: class, Name: k.name},
				Value: append(make([]byte, 0, len(v)), v...),
			})
		}
	}
	if scope.IsGroup() {
		if g := b.groups[scope]; g != nil {
			for _, e := range g.sorted {
				add(e.key, e.v)
			}
		}
		return out, nil
	}
	for k, v := range b.client {
		add(k, v)
	}
	storage.SortRecords(out)
	return out, nil
}

// RawContents returns copies of every group id, record name and value the
// Backend holds; see storage.Inspector.
func (b *Backend) RawContents(ctx context.Context) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out [][]byte
	for k, v := range b.client {
		out = append(out, []byte(k.name), append([]byte(nil), v...))
	}
	for s, g := range b.groups {
		out = append(out, s.GroupID())
		for _, e := range g.sorted {
			out = append(out, []byte(e.key.name), append([]byte(nil), e.v...))
		}
	}
	return out, nil
}
