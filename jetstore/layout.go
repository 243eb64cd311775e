package jetstore

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/mlsengine/mlsengine/storage"
)

// Subjects. Both buckets are KV buckets, so every record's subject is
// "$KV.<bucket>.<key>", and the key is made of tokens so that one wildcard
// subject selects a group, a client or a name prefix:
//
//	<member>.g.x<hex group id>.r.<name, "/" as ".">   a group's record
//	<member>.g.x<hex group id>.h                       the group's head (key bucket)
//	<member>.g.x<hex group id>.j.<n>                   journal chunks of a large unit (key bucket)
//	<member>.g.x<hex group id>.m                       the group's applied marker (snapshot bucket)
//	<member>.c.r.<name>                                a client record
//	<member>.c.h, <member>.c.j.<n>, <member>.c.m       the client's head, journal, marker
//	<member>.w.<generation>                            a wrapping key (key bucket)
//
// Record names are segments of [A-Za-z0-9_=-] (storage.Key), so they are
// valid subject tokens unchanged. The group id is hex after an "x" so that
// the empty id is a token too.
type layout struct {
	snap, keys       string // stream names
	snapPre, keysPre string // "$KV.<bucket>." prefixes
	member           string
}

func newLayout(snapBucket, keyBucket, member string) layout {
	return layout{
		snap: "KV_" + snapBucket, keys: "KV_" + keyBucket,
		snapPre: "$KV." + snapBucket + ".", keysPre: "$KV." + keyBucket + ".",
		member: member,
	}
}

// scopeToken is the part of a key that names a scope: "g.x<hex>" or "c".
func scopeToken(s storage.Scope) string {
	if s.IsClient() {
		return "c"
	}
	return "g.x" + hex.EncodeToString(s.GroupID())
}

// scopeKey is "<member>.<scope token>".
func (l layout) scopeKey(s storage.Scope) string { return l.member + "." + scopeToken(s) }

// streamFor returns the stream and subject prefix of a class.
func (l layout) pre(c storage.Class) string {
	if c == storage.KeyMaterial {
		return l.keysPre
	}
	return l.snapPre
}

func (l layout) stream(c storage.Class) string {
	if c == storage.KeyMaterial {
		return l.keys
	}
	return l.snap
}

// recordSubject is the subject of one record.
func (l layout) recordSubject(k storage.Key) string {
	return l.pre(k.Class) + l.scopeKey(k.Scope) + ".r." + strings.ReplaceAll(k.Name, "/", ".")
}

// prefixFilter is the wildcard subject of every record of a scope and class
// under a name prefix ("" for all of them).
func (l layout) prefixFilter(s storage.Scope, c storage.Class, prefix string) string {
	p := l.pre(c) + l.scopeKey(s) + ".r."
	if prefix != "" {
		p += strings.ReplaceAll(prefix, "/", ".")
	}
	return p + ">"
}

// scopeFilter is the wildcard subject of everything of a scope in a stream:
// records, head, journal and marker.
func (l layout) scopeFilter(s storage.Scope, c storage.Class) string {
	return l.pre(c) + l.scopeKey(s) + ".>"
}

func (l layout) headSubject(s storage.Scope) string   { return l.keysPre + l.scopeKey(s) + ".h" }
func (l layout) markerSubject(s storage.Scope) string { return l.snapPre + l.scopeKey(s) + ".m" }
func (l layout) journalSubject(s storage.Scope, i int) string {
	return fmt.Sprintf("%s%s.j.%d", l.keysPre, l.scopeKey(s), i)
}
func (l layout) wrapSubject(gen uint32) string {
	return fmt.Sprintf("%s%s.w.%d", l.keysPre, l.member, gen)
}
func (l layout) wrapFilter() string { return l.keysPre + l.member + ".w.>" }

// parsed is what a subject names.
type parsed struct {
	kind  byte // 'r' record, 'h' head, 'j' journal chunk, 'm' marker, 'w' wrapping key
	scope storage.Scope
	class storage.Class
	name  string // record name with "/" restored
	index string // journal chunk index or wrap generation
}

// parse reverses the functions above; ok is false for a subject of another
// member or a shape jetstore does not write.
func (l layout) parse(subject string) (p parsed, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(subject, l.keysPre):
		p.class, rest = storage.KeyMaterial, subject[len(l.keysPre):]
	case strings.HasPrefix(subject, l.snapPre):
		p.class, rest = storage.Public, subject[len(l.snapPre):]
	default:
		return p, false
	}
	rest, ok = strings.CutPrefix(rest, l.member+".")
	if !ok {
		return p, false
	}
	switch {
	case strings.HasPrefix(rest, "w."):
		p.kind, p.index = 'w', rest[2:]
		return p, true
	case strings.HasPrefix(rest, "c."):
		p.scope, rest = storage.ClientScope(), rest[2:]
	case strings.HasPrefix(rest, "g.x"):
		gid, tail, found := strings.Cut(rest[3:], ".")
		if !found {
			return p, false
		}
		id, err := hex.DecodeString(gid)
		if err != nil {
			return p, false
		}
		p.scope, rest = storage.GroupScope(id), tail
	default:
		return p, false
	}
	switch {
	case rest == "h":
		p.kind = 'h'
	case rest == "m":
		p.kind = 'm'
	case strings.HasPrefix(rest, "j."):
		p.kind, p.index = 'j', rest[2:]
	case strings.HasPrefix(rest, "r."):
		p.kind, p.name = 'r', strings.ReplaceAll(rest[2:], ".", "/")
	default:
		return p, false
	}
	return p, true
}

// validMember checks a member id: it becomes a subject token.
func validMember(m string) error {
	if m == "" || len(m) > 64 {
		return fmt.Errorf("%w: member id must be 1 to 64 bytes", ErrOptions)
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: member id byte %#02x at %d (use [A-Za-z0-9_-])", ErrOptions, c, i)
		}
	}
	return nil
}

// validBucket checks a bucket name as JetStream KV does.
func validBucket(b string) error {
	if b == "" || len(b) > 64 {
		return fmt.Errorf("%w: bucket name must be 1 to 64 bytes", ErrOptions)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: bucket name %q", ErrOptions, b)
		}
	}
	return nil
}
