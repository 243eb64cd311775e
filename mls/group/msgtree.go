package group

import (
	"cmp"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// msgTree is the secret tree of one epoch and the sender ratchets hanging
// from it (§9, §9.1), kept in a form that can be stored record by record
// and changed transactionally.
//
// Package secrettree computes the same keys, but its Tree can neither be
// serialized nor rolled back: a key it hands out is gone even if the
// message then fails to decrypt or verify. A group must leave its state
// unchanged when it rejects a message, and must persist every live secret
// under a name that changes when the secret does (storage's write-once key
// material), so it keeps its own copy-on-write tree:
//
//   - prepare derives the key of one (leaf, ratchet, generation) without
//     changing the tree and returns a msgTake holding the replacement
//     nodes and ratchet;
//   - commit installs them, clears the secrets that died (§9.2: a node
//     once both children are derived, a ratchet secret once the next one
//     is, a key once handed out, skipped keys beyond the tolerance) and
//     logs the record changes; abort clears what prepare derived.
//
// The tests check it against package secrettree.
type msgTree struct {
	suite      *ciphersuite.Suite
	epoch      uint64
	n, full    treemath.LeafCount
	tolerance  uint32
	maxForward uint32
	nodes      map[treemath.NodeIndex]*stNode
	leaves     map[treemath.LeafIndex]*stLeaf
	log        *changeLog
}

// stNode is a derived tree node none of whose children has been derived:
// deriving one consumes the node (§9.2), so both are derived then and the
// node replaced by the one not asked for. Values are never modified once
// in the tree.
type stNode struct {
	s secret.Secret
}

// stLeaf holds the two ratchets of a leaf: index ratchetHandshake and
// ratchetApplication.
type stLeaf struct{ r [2]*stRatchet }

const (
	ratchetHandshake   = 0
	ratchetApplication = 1
)

// stRatchet is one sender ratchet. Values are never modified once in the
// tree.
type stRatchet struct {
	s    secret.Secret // ratchet_secret of generation next; empty once exhausted
	next uint64        // 2^32 once exhausted
	kept []keptKey     // skipped generations below next, ascending
}

// keptKey is the key and nonce of a skipped generation kept for an
// out-of-order message.
type keptKey struct {
	gen        uint32
	key, nonce secret.Secret
}

// keyNonce is a content key and nonce handed out by the tree; the caller
// owns and clears it.
type keyNonce struct {
	gen        uint32
	key, nonce secret.Secret
}

func (k *keyNonce) clear() {
	k.key.Clear()
	k.nonce.Clear()
}

func newMsgTree(suite *ciphersuite.Suite, epoch uint64, encryption secret.Secret, leaves treemath.LeafCount, tol, maxFwd uint32, log *changeLog) (*msgTree, error) {
	full, err := treemath.FullLeafCount(uint32(leaves))
	if err != nil || leaves == 0 {
		return nil, fmt.Errorf("group: internal error: secret tree of %d leaves", leaves)
	}
	root, err := treemath.Root(full)
	if err != nil {
		return nil, fmt.Errorf("group: internal error: %w", err)
	}
	t := &msgTree{
		suite: suite, epoch: epoch, n: leaves, full: full, tolerance: tol, maxForward: maxFwd,
		nodes:  map[treemath.NodeIndex]*stNode{},
		leaves: map[treemath.LeafIndex]*stLeaf{},
		log:    log,
	}
	nd := &stNode{s: encryption}
	t.nodes[root] = nd
	t.logSecret(t.nodeName(root), nd.s.Bytes())
	return t, nil
}

// Record names (see records.go): the name of a key-material record changes
// whenever its secret does.
func (t *msgTree) prefix() string { return "epoch/" + strconv.FormatUint(t.epoch, 10) + "/" }

func (t *msgTree) nodeName(x treemath.NodeIndex) string {
	return t.prefix() + "tree/" + strconv.FormatUint(uint64(x), 10)
}

func ratchetLetter(rt int) string {
	if rt == ratchetHandshake {
		return "h"
	}
	return "a"
}

func (t *msgTree) ratchetName(l treemath.LeafIndex, rt int, next uint64) string {
	return fmt.Sprintf("%sratchet/%d/%s/%d", t.prefix(), l, ratchetLetter(rt), next)
}

func (t *msgTree) keyName(l treemath.LeafIndex, rt int, gen uint32) string {
	return fmt.Sprintf("%skey/%d/%s/%d", t.prefix(), l, ratchetLetter(rt), gen)
}

// The records of the tree (records.go) are envelopes:
//
//	tree node, ratchet:  [valueVersion, bin secret]
//	kept key:            [keptKeyVersion, bin key, bin nonce]
//
// One of them is written for every message sent or received, so they are
// built without reflection, straight into a buffer of their size that the
// log takes over.

func (t *msgTree) logSecret(name string, s []byte) {
	if t.log != nil {
		t.log.own(groupScope, storage.KeyMaterial, name, persist.ValueEnvelope(valueVersion, s))
	}
}

func (t *msgTree) logKept(name string, k *keptKey) {
	if t.log != nil {
		t.log.own(groupScope, storage.KeyMaterial, name, keptKeyValue(k))
	}
}

func keptKeyValue(k *keptKey) []byte {
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(3)
		e.Uint(keptKeyVersion)
		e.Bin(k.key.Bytes())
		e.Bin(k.nonce.Bytes())
	})
}

func (t *msgTree) logDel(name string) {
	if t.log != nil {
		t.log.del(groupScope, storage.KeyMaterial, name)
	}
}

// msgTake is a prepared change of the tree: the key of one generation and
// the tree as it is once that key has been handed out.
type msgTake struct {
	t       *msgTree
	leaf    treemath.LeafIndex
	kn      keyNonce
	nodes   map[treemath.NodeIndex]*stNode // new value; nil deletes
	newLeaf *stLeaf
	created []secret.Secret // secrets new in the tree, cleared on abort
	dead    []secret.Secret // secrets of the tree that die on commit
	done    bool
}

// next prepares the next unused generation of leaf's ratchet, for sending.
func (t *msgTree) next(leaf treemath.LeafIndex, rt int) (*msgTake, error) {
	return t.prepare(leaf, rt, 0, true)
}

// key prepares generation gen of leaf's ratchet, for receiving.
func (t *msgTree) key(leaf treemath.LeafIndex, rt int, gen uint32) (*msgTake, error) {
	return t.prepare(leaf, rt, gen, false)
}

func (t *msgTree) prepare(leaf treemath.LeafIndex, rt int, gen uint32, sending bool) (*msgTake, error) {
	if t == nil || t.suite == nil {
		return nil, fmt.Errorf("%w: secret tree deleted", ErrWrongEpoch)
	}
	if uint32(leaf) >= uint32(t.n) {
		return nil, fmt.Errorf("%w: leaf %d outside a secret tree of %d leaves", ErrSenderNotMember, leaf, t.n)
	}
	tk := &msgTake{t: t, leaf: leaf, nodes: map[treemath.NodeIndex]*stNode{}}
	old := t.leaves[leaf]
	if old == nil {
		lf, err := tk.deriveLeaf()
		if err != nil {
			tk.abort()
			return nil, err
		}
		tk.newLeaf = lf
	} else {
		cp := *old
		tk.newLeaf = &cp
	}
	r := tk.newLeaf.r[rt]
	if sending {
		if r.next > math.MaxUint32 {
			tk.abort()
			return nil, fmt.Errorf("%w: ratchet exhausted", ErrInvalidArgument)
		}
		gen = uint32(r.next)
	}
	nr, err := tk.advance(r, gen)
	if err != nil {
		tk.abort()
		return nil, fmt.Errorf("%w (leaf %d, generation %d)", err, leaf, gen)
	}
	tk.newLeaf.r[rt] = nr
	return tk, nil
}

// deriveLeaf derives the leaf's secret from its deepest derived ancestor
// (§9) and the roots of its two ratchets:
//
//	tree_node_[left]_secret = ExpandWithLabel(., "tree", "left", KDF.Nh)
//	handshake_ratchet_secret_[N]_[0] = ExpandWithLabel(., "handshake", "", KDF.Nh)
//	application_ratchet_secret_[N]_[0] = ExpandWithLabel(., "application", "", KDF.Nh)
func (tk *msgTake) deriveLeaf() (*stLeaf, error) {
	t := tk.t
	x, err := treemath.LeafToNode(tk.leaf, t.full)
	if err != nil {
		return nil, fmt.Errorf("group: internal error: %w", err)
	}
	chain := []treemath.NodeIndex{x}
	path, err := treemath.DirectPath(x, t.full)
	if err != nil {
		return nil, fmt.Errorf("group: internal error: %w", err)
	}
	chain = append(chain, path...)
	start := -1
	for i, y := range chain {
		if _, ok := t.nodes[y]; ok {
			start = i
			break
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("group: internal error: no derived ancestor of leaf %d", tk.leaf)
	}
	var leafSecret secret.Secret
	if start == 0 {
		nd := t.nodes[x]
		leafSecret = nd.s
		tk.nodes[x] = nil
		tk.dead = append(tk.dead, nd.s)
	}
	// §9.2: a node from which a child is derived is consumed and must go
	// at once (the RFC's example deletes D, F and G and keeps E and C), so
	// each step derives both children, keeps the one off the path (if it
	// covers a member) and deletes the node.
	cur := t.nodes[chain[start]]
	for i := start; i > 0; i-- {
		p, child := chain[i], chain[i-1]
		cs, err := tk.deriveChild(cur.s, p, child)
		if err != nil {
			return nil, err
		}
		if sib := 2*p - child; coversMember(sib, t.n) {
			ss, err := tk.deriveChild(cur.s, p, sib)
			if err != nil {
				return nil, err
			}
			tk.nodes[sib] = &stNode{s: ss}
		}
		tk.nodes[p] = nil
		tk.dead = append(tk.dead, cur.s)
		if i-1 == 0 {
			leafSecret = cs
		} else {
			cur = &stNode{s: cs}
			tk.nodes[child] = cur
		}
	}
	nh := t.suite.HashLen()
	hs, err := t.suite.ExpandWithLabel(leafSecret.Bytes(), "handshake", nil, nh)
	if err != nil {
		return nil, err
	}
	as, err := t.suite.ExpandWithLabel(leafSecret.Bytes(), "application", nil, nh)
	if err != nil {
		clear(hs)
		return nil, err
	}
	lf := &stLeaf{r: [2]*stRatchet{{s: secret.New(hs)}, {s: secret.New(as)}}}
	tk.created = append(tk.created, lf.r[0].s, lf.r[1].s)
	// The leaf secret itself is not kept: it dies here (§9.2).
	tk.dead = append(tk.dead, leafSecret)
	return lf, nil
}

// deriveChild is tree_node_[child]_secret = ExpandWithLabel(parent, "tree",
// "left" or "right", KDF.Nh) (§9).
func (tk *msgTake) deriveChild(parent secret.Secret, p, child treemath.NodeIndex) (secret.Secret, error) {
	side := "right"
	if child < p {
		side = "left"
	}
	b, err := tk.t.suite.ExpandWithLabel(parent.Bytes(), "tree", []byte(side), tk.t.suite.HashLen())
	if err != nil {
		return secret.Secret{}, err
	}
	s := secret.New(b)
	tk.created = append(tk.created, s)
	return s, nil
}

// coversMember reports whether the subtree under node y holds a leaf
// below n: y's level is its number of trailing one bits (§4.1 layout).
func coversMember(y treemath.NodeIndex, n treemath.LeafCount) bool {
	k := bits.TrailingZeros32(^uint32(y))
	return (uint32(y)-(1<<k-1))/2 < uint32(n)
}

// advance computes the ratchet r once generation g has been handed out,
// and the key of g (§9.1):
//
//	ratchet_nonce_[N]_[j] = DeriveTreeSecret(ratchet_secret_[N]_[j], "nonce", j, AEAD.Nn)
//	ratchet_key_[N]_[j] = DeriveTreeSecret(ratchet_secret_[N]_[j], "key", j, AEAD.Nk)
//	ratchet_secret_[N]_[j+1] = DeriveTreeSecret(ratchet_secret_[N]_[j], "secret", j, KDF.Nh)
func (tk *msgTake) advance(r *stRatchet, g uint32) (*stRatchet, error) {
	t := tk.t
	if uint64(g) < r.next {
		i, found := slices.BinarySearchFunc(r.kept, g, func(k keptKey, g uint32) int { return cmp.Compare(k.gen, g) })
		if !found {
			return nil, ErrReplay
		}
		k := r.kept[i]
		tk.kn = keyNonce{gen: g, key: secret.Copy(k.key.Bytes()), nonce: secret.Copy(k.nonce.Bytes())}
		tk.dead = append(tk.dead, k.key, k.nonce)
		nr := &stRatchet{s: r.s, next: r.next, kept: slices.Delete(slices.Clone(r.kept), i, i+1)}
		return nr, nil
	}
	if uint64(g)-r.next > uint64(t.maxForward) {
		return nil, fmt.Errorf("%w: %d generations ahead, at most %d allowed", ErrTooFarAhead, uint64(g)-r.next, t.maxForward)
	}
	cur := r.s
	owned := false
	var skipped []keptKey
	for j := uint32(r.next); j < g; j++ {
		if g-j <= t.tolerance {
			kn, err := deriveKeyNonce(t.suite, cur, j)
			if err != nil {
				return nil, err
			}
			skipped = append(skipped, keptKey{gen: j, key: kn.key, nonce: kn.nonce})
			tk.created = append(tk.created, kn.key, kn.nonce)
		}
		nx, err := t.suite.DeriveTreeSecret(cur.Bytes(), "secret", j, t.suite.HashLen())
		if err != nil {
			return nil, err
		}
		if owned {
			cur.Clear()
		}
		cur, owned = secret.New(nx), true
	}
	kn, err := deriveKeyNonce(t.suite, cur, g)
	if err != nil {
		if owned {
			cur.Clear()
		}
		return nil, err
	}
	tk.kn = kn
	nr := &stRatchet{next: uint64(g) + 1}
	if g < math.MaxUint32 {
		nx, err := t.suite.DeriveTreeSecret(cur.Bytes(), "secret", g, t.suite.HashLen())
		if err != nil {
			if owned {
				cur.Clear()
			}
			return nil, err
		}
		nr.s = secret.New(nx)
		tk.created = append(tk.created, nr.s)
	}
	if owned {
		cur.Clear()
	}
	tk.dead = append(tk.dead, r.s)
	kept := append(slices.Clone(r.kept), skipped...)
	drop := 0
	for drop < len(kept) && uint64(g)-uint64(kept[drop].gen) > uint64(t.tolerance) {
		tk.dead = append(tk.dead, kept[drop].key, kept[drop].nonce)
		drop++
	}
	nr.kept = kept[drop:]
	return nr, nil
}

func deriveKeyNonce(suite *ciphersuite.Suite, s secret.Secret, j uint32) (keyNonce, error) {
	k, err := suite.DeriveTreeSecret(s.Bytes(), "key", j, suite.KeyLen())
	if err != nil {
		return keyNonce{}, err
	}
	n, err := suite.DeriveTreeSecret(s.Bytes(), "nonce", j, suite.NonceLen())
	if err != nil {
		clear(k)
		return keyNonce{}, err
	}
	return keyNonce{gen: j, key: secret.New(k), nonce: secret.New(n)}, nil
}

// commit installs the prepared change and deletes what died (§9.2). The
// key and nonce stay with the caller, who clears them.
func (tk *msgTake) commit() {
	if tk == nil || tk.done {
		return
	}
	tk.done = true
	t := tk.t
	for x, nd := range tk.nodes {
		if _, ok := t.nodes[x]; ok {
			t.logDel(t.nodeName(x))
		}
		if nd == nil {
			delete(t.nodes, x)
			continue
		}
		t.nodes[x] = nd
		t.logSecret(t.nodeName(x), nd.s.Bytes())
	}
	old := t.leaves[tk.leaf]
	for rt := range 2 {
		var or *stRatchet
		if old != nil {
			or = old.r[rt]
		}
		nr := tk.newLeaf.r[rt]
		if or == nr {
			continue
		}
		if or != nil && or.next != nr.next {
			t.logDel(t.ratchetName(tk.leaf, rt, or.next))
		}
		if or == nil || or.next != nr.next {
			t.logSecret(t.ratchetName(tk.leaf, rt, nr.next), nr.s.Bytes())
		}
		have := map[uint32]bool{}
		for _, k := range nr.kept {
			have[k.gen] = true
		}
		had := map[uint32]bool{}
		if or != nil {
			for _, k := range or.kept {
				had[k.gen] = true
				if !have[k.gen] {
					t.logDel(t.keyName(tk.leaf, rt, k.gen))
				}
			}
		}
		for i := range nr.kept {
			if k := &nr.kept[i]; !had[k.gen] {
				t.logKept(t.keyName(tk.leaf, rt, k.gen), k)
			}
		}
	}
	t.leaves[tk.leaf] = tk.newLeaf
	for i := range tk.dead {
		tk.dead[i].Clear()
	}
	tk.created, tk.dead = nil, nil
}

// abort drops the prepared change; the tree is as it was. The key and
// nonce are cleared too.
func (tk *msgTake) abort() {
	if tk == nil || tk.done {
		return
	}
	tk.done = true
	for i := range tk.created {
		tk.created[i].Clear()
	}
	tk.kn.clear()
	tk.created, tk.dead = nil, nil
}

// clear deletes every secret of the tree, as when its epoch is dropped.
// With log set, the deletion of every record is logged.
func (t *msgTree) clear() {
	if t == nil || t.suite == nil {
		return
	}
	for _, r := range t.records() {
		t.logDel(r.Key.Name)
		clear(r.Value)
	}
	for x, nd := range t.nodes {
		nd.s.Clear()
		delete(t.nodes, x)
	}
	for l, lf := range t.leaves {
		for _, r := range lf.r {
			r.s.Clear()
			for i := range r.kept {
				r.kept[i].key.Clear()
				r.kept[i].nonce.Clear()
			}
		}
		delete(t.leaves, l)
	}
	t.suite = nil
}

// records returns every live secret of the tree as key-material records
// (in the scope of the empty group id), owned by the caller.
func (t *msgTree) records() []storage.Record {
	l := newChangeLog()
	t.logAll(l)
	return l.take(nil).Puts
}

// logAll logs every live secret of the tree as key-material records, in
// new envelopes the log owns.
func (t *msgTree) logAll(log *changeLog) {
	add := func(name string, v []byte) { log.own(groupScope, storage.KeyMaterial, name, v) }
	for x, nd := range t.nodes {
		add(t.nodeName(x), persist.ValueEnvelope(valueVersion, nd.s.Bytes()))
	}
	for l, lf := range t.leaves {
		for rt, r := range lf.r {
			add(t.ratchetName(l, rt, r.next), persist.ValueEnvelope(valueVersion, r.s.Bytes()))
			for i := range r.kept {
				add(t.keyName(l, rt, r.kept[i].gen), keptKeyValue(&r.kept[i]))
			}
		}
	}
}

// restoreMsgTree rebuilds a tree from the key-material records logAll
// wrote (names relative to the epoch prefix are parsed; others are
// ignored).
func restoreMsgTree(suite *ciphersuite.Suite, epoch uint64, leaves treemath.LeafCount, tol, maxFwd uint32, recs []storage.Record, log *changeLog) (*msgTree, error) {
	full, err := treemath.FullLeafCount(uint32(leaves))
	if err != nil || leaves == 0 {
		return nil, fmt.Errorf("%w: secret tree of %d leaves", ErrCorruptState, leaves)
	}
	t := &msgTree{
		suite: suite, epoch: epoch, n: leaves, full: full, tolerance: tol, maxForward: maxFwd,
		nodes: map[treemath.NodeIndex]*stNode{}, leaves: map[treemath.LeafIndex]*stLeaf{}, log: log,
	}
	bad := func(name string, err error) error {
		t.clear()
		if err == nil {
			return fmt.Errorf("%w: record %q", ErrCorruptState, name)
		}
		return corrupt(name, err)
	}
	nh, nk, nn := suite.HashLen(), suite.KeyLen(), suite.NonceLen()
	leaf := func(l uint64) *stLeaf {
		lf := t.leaves[treemath.LeafIndex(l)]
		if lf == nil {
			lf = &stLeaf{r: [2]*stRatchet{{}, {}}}
			t.leaves[treemath.LeafIndex(l)] = lf
		}
		return lf
	}
	seen := map[[2]uint64]bool{}
	for _, r := range recs {
		rest, ok := strings.CutPrefix(r.Key.Name, t.prefix())
		if !ok {
			continue
		}
		parts := strings.Split(rest, "/")
		if rest == "secrets" || rest == "sender-data" {
			continue
		}
		switch {
		case parts[0] == "tree" && len(parts) == 2:
			x, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil {
				return nil, bad(r.Key.Name, err)
			}
			nd := &stNode{}
			if nd.s, err = persist.OpenSecret(r.Value, valueVersion, nh); err != nil {
				return nil, bad(r.Key.Name, err)
			}
			if old := t.nodes[treemath.NodeIndex(x)]; old != nil {
				old.s.Clear()
			}
			t.nodes[treemath.NodeIndex(x)] = nd
		case (parts[0] == "ratchet" || parts[0] == "key") && len(parts) == 4:
			l, err1 := strconv.ParseUint(parts[1], 10, 32)
			g, err2 := strconv.ParseUint(parts[3], 10, 33)
			rt := ratchetHandshake
			switch parts[2] {
			case "h":
			case "a":
				rt = ratchetApplication
			default:
				return nil, bad(r.Key.Name, nil)
			}
			if err1 != nil || err2 != nil || l >= uint64(leaves) || g > 1<<32 {
				return nil, bad(r.Key.Name, nil)
			}
			rr := leaf(l).r[rt]
			if parts[0] == "ratchet" {
				if seen[[2]uint64{l, uint64(rt)}] {
					return nil, bad(r.Key.Name, nil)
				}
				// An exhausted ratchet (generation 2^32) has no secret.
				n := nh
				if g == 1<<32 {
					n = 0
				}
				s, err := persist.OpenSecret(r.Value, valueVersion, n)
				if err != nil {
					return nil, bad(r.Key.Name, err)
				}
				seen[[2]uint64{l, uint64(rt)}] = true
				rr.s, rr.next = s, g
				continue
			}
			if g >= 1<<32 {
				return nil, bad(r.Key.Name, nil)
			}
			k, err := openKeptKey(r.Value, nk, nn)
			if err != nil {
				return nil, bad(r.Key.Name, err)
			}
			k.gen = uint32(g)
			rr.kept = append(rr.kept, k)
		default:
			return nil, bad(r.Key.Name, nil)
		}
	}
	for l, lf := range t.leaves {
		for rt, r := range lf.r {
			if !seen[[2]uint64{uint64(l), uint64(rt)}] {
				t.clear()
				return nil, fmt.Errorf("%w: leaf %d has kept keys but no ratchet", ErrCorruptState, l)
			}
			slices.SortFunc(r.kept, func(a, b keptKey) int { return cmp.Compare(a.gen, b.gen) })
			for _, k := range r.kept {
				if uint64(k.gen) >= r.next {
					t.clear()
					return nil, fmt.Errorf("%w: kept key ahead of its ratchet", ErrCorruptState)
				}
			}
		}
	}
	return t, nil
}

// openKeptKey decodes a kept key record of a key of nk and a nonce of nn
// bytes.
func openKeptKey(v []byte, nk, nn int) (keptKey, error) {
	d := persist.NewDecoder(v)
	d.Open(keptKeyVersion, 2)
	k := keptKey{key: d.Secret(nk), nonce: d.Secret(nn)}
	if err := d.Finish(); err != nil {
		k.key.Clear()
		k.nonce.Clear()
		return keptKey{}, err
	}
	return k, nil
}
