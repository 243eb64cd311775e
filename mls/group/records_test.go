package group_test

import (
	"errors"
	"fmt"
	"github.com/mlsengine/mlsengine/storage"
	"regexp"
	"slices"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// recordKinds maps the record names of the table in
// mls/persist/records.go to their kind, and the kind to its number of
// envelope elements (version included), or to 0 for an RFC 9420
// structure, and its version (1 unless given). Optional kinds need not appear in the states of richMembers:
// legacy ones are read but no longer written, and tree nodes in records
// of their own have TestTreeTiles.
var recordKinds = []struct {
	re       *regexp.Regexp
	kind     string
	elements int
	version  int8
	optional bool
}{
	{regexp.MustCompile(`^join-config$`), "join-config", 10, 1, false},
	{regexp.MustCompile(`^state$`), "state", 4, 1, false},
	{regexp.MustCompile(`^context$`), "context", 0, 1, false},
	{regexp.MustCompile(`^transcript/interim$`), "interim", 2, 1, false},
	{regexp.MustCompile(`^confirmation-tag$`), "confirmation-tag", 2, 1, false},
	{regexp.MustCompile(`^tree/size$`), "tree/size", 2, 2, false},
	{regexp.MustCompile(`^tree/t/\d+$`), "tree tile", 3, 1, false},
	{regexp.MustCompile(`^tree/x/\d+$`), "tree node", 0, 0, true},
	{regexp.MustCompile(`^tree/\d+/\d+$`), "tree chunk", 0, 0, true},
	{regexp.MustCompile(`^proposal/[0-9a-f]+$`), "proposal", 3, 1, false},
	{regexp.MustCompile(`^pending-commit(/more/\d+)?$`), "pending-commit", 0, 1, false},
	{regexp.MustCompile(`^pending-commit/secrets$`), "pending-commit/secrets", 5, 1, false},
	{regexp.MustCompile(`^past/\d+/context$`), "past context", 0, 1, false},
	{regexp.MustCompile(`^past/\d+/members/\d+$`), "past members", 2, 1, true},
	{regexp.MustCompile(`^past/\d+/delta/\d+$`), "past delta", 3, 1, false},
	{regexp.MustCompile(`^epoch/\d+/secrets$`), "epoch secrets", 7, 1, false},
	{regexp.MustCompile(`^epoch/\d+/sender-data$`), "sender-data", 2, 1, false},
	{regexp.MustCompile(`^epoch/\d+/tree/\d+$`), "secret tree node", 2, 1, false},
	{regexp.MustCompile(`^epoch/\d+/ratchet/\d+/[ha]/\d+$`), "ratchet", 2, 1, false},
	{regexp.MustCompile(`^epoch/\d+/key/\d+/[ha]/\d+$`), "kept key", 3, 1, false},
	{regexp.MustCompile(`^resumption/\d+$`), "resumption", 2, 1, false},
	{regexp.MustCompile(`^hpke/\d+/[0-9a-f]+$`), "hpke", 2, 1, false},
	{regexp.MustCompile(`^pending-update/[0-9a-f]+$`), "pending-update", 2, 1, false},
}

func recordKind(t testing.TB, name string) (kind string, elements int) {
	kind, elements, _ = recordVersion(t, name)
	return kind, elements
}

func recordVersion(t testing.TB, name string) (kind string, elements int, version int8) {
	for _, k := range recordKinds {
		if k.re.MatchString(name) {
			return k.kind, k.elements, k.version
		}
	}
	t.Fatalf("record %q is not in the table", name)
	return "", 0, 0
}

// richMembers returns the three members of a trio after operations that
// leave, between them, every kind of group record: past epochs with a
// blank leaf, skipped generations, queued proposals, an own Update, and
// pending commits with and without a path.
func richMembers(t testing.TB) []*client {
	t.Helper()
	tr := newTrio(t, false)
	a, b, c := tr.alice, tr.bob, tr.carol
	// One more epoch, so that the epoch with erin's blank leaf is a past
	// one (past/<e>/members with a nil key).
	res, err := a.g.Commit(&group.CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	a.g.MergePendingCommit()
	for _, o := range []*client{b, c} {
		rm, err := o.g.Process(res.Commit)
		if err != nil {
			t.Fatal(err)
		}
		o.g.MergeStagedCommit(rm.Commit)
	}
	// Alice reads only the third of Bob's messages and keeps the keys of
	// the first two.
	var last *wire.MLSMessage
	for range 3 {
		if last, err = b.g.Protect([]byte("hi"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.g.Process(last); err != nil {
		t.Fatal(err)
	}
	// Bob's Add is queued at Alice, who proposes her own Update.
	m, _, err := b.g.ProposeAdd(tr.daveKP.KeyPackage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.g.Process(m); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.g.ProposeUpdate(nil); err != nil {
		t.Fatal(err)
	}
	// Bob commits with a path, Carol without one (an Add needs none).
	if _, err := b.g.Commit(&group.CommitOptions{ForcePath: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{addProposal(tr.daveKP)}}); err != nil {
		t.Fatal(err)
	}
	return []*client{a, b, c}
}

// reinitMember returns a member of a group that a ReInit ended.
func reinitMember(t *testing.T) *client {
	a, b := newClient(t, suite1, "a", 1), newClient(t, suite1, "b", 2)
	newGroupOf(t, a, b)
	m, _, err := b.g.ProposeReInit([]byte("v2"), ciphersuite.MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.g.Process(m); err != nil {
		t.Fatal(err)
	}
	commitAll(t, a, nil, b)
	if a.g.Status() != group.StatusReInit {
		t.Fatal("not ended by the ReInit")
	}
	return a
}

// TestRecordEncodings checks every record against the table of
// records.go: RFC 9420 structures parse as such, everything else is a
// MessagePack array of the listed length whose element 0 is its version;
// and Restore rebuilds the same state from them.
func TestRecordEncodings(t *testing.T) {
	members := append(richMembers(t), reinitMember(t))
	seen := map[string]bool{}
	for _, m := range members {
		recs := m.g.Records()
		for _, r := range recs {
			kind, n, version := recordVersion(t, r.Key.Name)
			seen[kind] = true
			var err error
			switch kind {
			case "context", "past context":
				_, err = wire.Unmarshal[wire.GroupContext](r.Value)
			case "pending-commit":
				_, err = wire.Unmarshal[wire.AuthenticatedContent](r.Value)
			case "tree chunk", "tree node":
				// optional<Node>s, a LeafNode or a ParentNode, checked by
				// Restore.
			default:
				var v []any
				if err = msgpack.Unmarshal(r.Value, &v); err == nil && (len(v) != n || v[0] != version) {
					err = fmt.Errorf("%d elements, first %#v; want %d, version %d", len(v), v[0], n, version)
				}
				if err == nil && kind == "state" && (v[3] != nil) != (m.g.Status() == group.StatusReInit) {
					err = fmt.Errorf("ReInit %#v with status %v", v[3], m.g.Status())
				}
			}
			if err != nil {
				t.Errorf("%s: record %s: %v", m.name, r.Key.Name, err)
			}
		}
		g, err := group.Restore(m.cfg, m.id.SigningKey, recs)
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if fingerprint(g) != fingerprint(m.g) {
			t.Fatalf("%s: restored state differs", m.name)
		}
	}
	for _, k := range recordKinds {
		if !seen[k.kind] && !k.optional {
			t.Errorf("no %s record in the test states", k.kind)
		}
	}

	kp := newClient(t, suite1, "k", 9)
	b := kp.keyPackage(t, suite1)
	recs := b.Records()
	if _, err := wire.Unmarshal[wire.KeyPackage](recs[0].Value); err != nil {
		t.Errorf("key package: %v", err)
	}
	var v []any
	if err := msgpack.Unmarshal(recs[1].Value, &v); err != nil || len(v) != 3 || v[0] != int8(1) {
		t.Errorf("key package keys: %v %#v", err, v)
	}
}

// corruptions returns broken forms of a valid envelope: strict prefixes,
// a trailing byte, the next version, and other MessagePack types.
func corruptions(v []byte) map[string][]byte {
	out := map[string][]byte{
		"empty":        {},
		"trailing":     append(slices.Clone(v), 0),
		"next version": append([]byte{v[0], v[1] + 1}, v[2:]...),
		"map":          append([]byte{0x80 | v[0]&0x0f}, v[1:]...),
		"one field":    append([]byte{0x90 | (v[0]&0x0f - 1)}, v[1:]...),
		"nil":          {0xc0},
		"legacy byte1": append([]byte{1}, v...),
	}
	for _, n := range []int{1, 2, len(v) / 2, len(v) - 1} {
		out[fmt.Sprintf("prefix %d", n)] = v[:n]
	}
	return out
}

// TestRestoreRejectsCorruptEnvelopes breaks each envelope record in turn:
// Restore must fail with ErrCorruptState, and so must
// RestoreKeyPackageBundle.
func TestRestoreRejectsCorruptEnvelopes(t *testing.T) {
	for _, m := range richMembers(t) {
		recs := m.g.Records()
		for i, r := range recs {
			if _, n := recordKind(t, r.Key.Name); n == 0 {
				continue
			}
			for what, v := range corruptions(r.Value) {
				broken := slices.Clone(recs)
				broken[i].Value = v
				if _, err := group.Restore(m.cfg, m.id.SigningKey, broken); !errors.Is(err, group.ErrCorruptState) {
					t.Errorf("%s: %s %s: %v", m.name, r.Key.Name, what, err)
				}
			}
		}
	}
	c := newClient(t, suite1, "k", 9)
	b := c.keyPackage(t, suite1)
	recs := b.Records()
	for what, v := range corruptions(recs[1].Value) {
		if _, err := group.RestoreKeyPackageBundle(recs[0].Value, v, c.id.SigningKey); !errors.Is(err, group.ErrCorruptState) {
			t.Errorf("key package keys %s: %v", what, err)
		}
	}
	other := c.keyPackage(t, suite1).Records()
	if _, err := group.RestoreKeyPackageBundle(recs[0].Value, other[1].Value, c.id.SigningKey); !errors.Is(err, group.ErrCorruptState) {
		t.Errorf("keys of another key package: %v", err)
	}
}

// TestRestoreFromChanges rebuilds members from the records a storage
// layer keeps by applying every TakeChanges, with queued proposals, an own
// Update and pending commits, and compares them with the members.
func TestRestoreFromChanges(t *testing.T) {
	tr := newTrio(t, false)
	stores := map[*client]map[storage.Key][]byte{}
	for _, c := range tr.all {
		st := map[storage.Key][]byte{}
		for _, r := range c.g.Records() {
			st[r.Key] = r.Value
		}
		stores[c] = st
	}
	apply := func(c *client) {
		ch := c.g.TakeChanges()
		for _, r := range ch.Puts {
			stores[c][r.Key] = r.Value
		}
		for k := range stores[c] {
			if ch.Deleted(k) {
				delete(stores[c], k)
			}
		}
	}
	check := func(c *client) {
		t.Helper()
		apply(c)
		var recs []storage.Record
		for k, v := range stores[c] {
			recs = append(recs, storage.Record{Key: k, Value: v})
		}
		g, err := group.Restore(c.cfg, c.id.SigningKey, recs)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if fingerprint(g) != fingerprint(c.g) {
			t.Fatalf("%s: restored state differs", c.name)
		}
	}
	a, b, c := tr.alice, tr.bob, tr.carol
	for _, p := range []func() (*wire.MLSMessage, []byte, error){
		func() (*wire.MLSMessage, []byte, error) { return b.g.ProposeAdd(tr.daveKP.KeyPackage) },
		func() (*wire.MLSMessage, []byte, error) { return c.g.ProposeRemove(a.g.OwnLeafIndex()) },
	} {
		m, _, err := p()
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range tr.all {
			if uint32(o.g.OwnLeafIndex()) != m.PublicMessage.Content.Sender.LeafIndex {
				if _, err := o.g.Process(m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if _, _, err := a.g.ProposeUpdate(nil); err != nil {
		t.Fatal(err)
	}
	check(a)
	if _, err := c.g.Commit(&group.CommitOptions{Proposals: []*wire.Proposal{addProposal(tr.daveKP)}, SkipQueued: true}); err != nil {
		t.Fatal(err)
	}
	check(c)
	if _, err := b.g.Commit(nil); err != nil {
		t.Fatal(err)
	}
	check(b)
}

// TestRestoreDefersPrivateKeys: the HPKE private keys of a restored group
// are decoded when a commit first needs them, and checked then against
// the tree as it was restored: keys swapped between two nodes load, and
// the first commit fails with ErrCorruptState, changing nothing.
func TestRestoreDefersPrivateKeys(t *testing.T) {
	tr := newTrio(t, false)
	a := tr.alice
	commitAll(t, a, &group.CommitOptions{ForcePath: true}, tr.bob, tr.carol)
	recs := a.g.Records()
	var hpke []int
	for i, r := range recs {
		if regexp.MustCompile(`^hpke/`).MatchString(r.Key.Name) {
			hpke = append(hpke, i)
		}
	}
	if len(hpke) < 2 {
		t.Fatalf("%d HPKE key records", len(hpke))
	}
	recs[hpke[0]].Value, recs[hpke[1]].Value = recs[hpke[1]].Value, recs[hpke[0]].Value
	g, err := group.Restore(a.cfg, a.id.SigningKey, recs)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	// An Add needs no path, so the commit keeps the member's keys.
	add := &group.CommitOptions{Proposals: []*wire.Proposal{addProposal(tr.daveKP)}}
	before := fingerprint(g)
	if _, err := g.Commit(add); !errors.Is(err, group.ErrCorruptState) {
		t.Fatalf("commit with swapped keys: %v, want ErrCorruptState", err)
	}
	if fingerprint(g) != before || !g.TakeChanges().Empty() {
		t.Fatal("the failed commit changed the group")
	}
	// The intact records commit, and so does the group they restore.
	g, err = group.Restore(a.cfg, a.id.SigningKey, a.g.Records())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Commit(add); err != nil {
		t.Fatal(err)
	}
}
