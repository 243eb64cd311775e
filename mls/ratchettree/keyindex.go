package ratchettree

import (
	"bytes"
	"cmp"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// keyIndex finds the node holding an encryption key and the leaf holding a
// signature key in O(1), so that the uniqueness checks of §7.3 cost O(1)
// per new leaf and O(N) for a whole tree. Keys are indexed by a seeded
// 64-bit hash; the few hashes held by more than one node (duplicate keys,
// or a collision) move to a multi-valued map, and every hit is confirmed
// against the key's bytes.
type keyIndex struct {
	seed    maphash.Seed
	enc     map[uint64]uint32 // encryption key hash -> node index
	sig     map[uint64]uint32 // signature key hash -> leaf index
	encMore map[uint64][]uint32
	sigMore map[uint64][]uint32

	// Credential types across members, for CheckNewLeaf: package wire
	// decodes only basic and x509 credentials, so these are the only
	// types a member can use.
	members   int
	credUsed  [3]int // members using credential type i
	credKnown [3]int // members listing credential type i in capabilities
}

// credMask returns the bit set of the credential types (1 and 2) a leaf
// lists in its capabilities, and its own credential type.
func credMask(enc []byte) (mask uint8, own wire.CredentialType) {
	v, _ := viewLeaf(enc)
	for t := wire.CredentialType(1); t <= 2; t++ {
		if supportsCredential(v.capCredentials, t) {
			mask |= 1 << t
		}
	}
	return mask, v.credentialType
}

func (k *keyIndex) countCredentials(enc []byte, d int) {
	mask, own := credMask(enc)
	k.members += d
	if own <= 2 {
		k.credUsed[own] += d
	}
	for t := 1; t <= 2; t++ {
		if mask&(1<<t) != 0 {
			k.credKnown[t] += d
		}
	}
}

// checkCredentials checks that ln, replacing leaf l (noNode for none), and
// the other members support each other's credential types (§7.3).
func (k *keyIndex) checkCredentials(t *Tree, l uint32, ln *wire.LeafNode) error {
	used, known, others := k.credUsed, k.credKnown, k.members
	if l != noNode {
		mask, own := credMask(t.leaves[l])
		others--
		if own <= 2 {
			used[own]--
		}
		for c := 1; c <= 2; c++ {
			if mask&(1<<c) != 0 {
				known[c]--
			}
		}
	}
	ct := ln.Credential.CredentialType
	if ct > 2 || known[ct] < others {
		return fmt.Errorf("%w: credential type %v is not supported by every member", ErrCapabilities, ct)
	}
	for c := 1; c <= 2; c++ {
		if used[c] > 0 && !slices.Contains(ln.Capabilities.Credentials, wire.CredentialType(c)) {
			return fmt.Errorf("%w: credential type %v of other members is not supported", ErrCapabilities, wire.CredentialType(c))
		}
	}
	return nil
}

func (k *keyIndex) hash(key []byte) uint64 { return maphash.Bytes(k.seed, key) }

func indexAdd(one map[uint64]uint32, more map[uint64][]uint32, h uint64, v uint32) {
	if vs, ok := more[h]; ok {
		more[h] = append(vs, v)
		return
	}
	if old, ok := one[h]; ok {
		delete(one, h)
		more[h] = []uint32{old, v}
		return
	}
	one[h] = v
}

func indexRemove(one map[uint64]uint32, more map[uint64][]uint32, h uint64, v uint32) {
	if vs, ok := more[h]; ok {
		if i := slices.Index(vs, v); i >= 0 {
			vs = slices.Delete(vs, i, i+1)
		}
		if len(vs) == 1 {
			delete(more, h)
			one[h] = vs[0]
		} else {
			more[h] = vs
		}
		return
	}
	if old, ok := one[h]; ok && old == v {
		delete(one, h)
	}
}

func (k *keyIndex) addLeaf(l uint32, enc []byte) {
	if enc == nil {
		return
	}
	ek, sk := leafKeys(enc)
	indexAdd(k.enc, k.encMore, k.hash(ek), 2*l)
	indexAdd(k.sig, k.sigMore, k.hash(sk), l)
	k.countCredentials(enc, 1)
}

func (k *keyIndex) removeLeaf(l uint32, enc []byte) {
	if enc == nil {
		return
	}
	ek, sk := leafKeys(enc)
	indexRemove(k.enc, k.encMore, k.hash(ek), 2*l)
	indexRemove(k.sig, k.sigMore, k.hash(sk), l)
	k.countCredentials(enc, -1)
}

func (k *keyIndex) addParent(x uint32, p *wire.ParentNode) {
	if p != nil {
		indexAdd(k.enc, k.encMore, k.hash(p.EncryptionKey), x)
	}
}

func (k *keyIndex) removeParent(x uint32, p *wire.ParentNode) {
	if p != nil {
		indexRemove(k.enc, k.encMore, k.hash(p.EncryptionKey), x)
	}
}

// index returns the key index, building it on first use; t.mu is held.
func (t *Tree) index() *keyIndex {
	if t.keys != nil {
		return t.keys
	}
	members := t.MemberCount()
	k := &keyIndex{
		seed:    maphash.MakeSeed(),
		enc:     make(map[uint64]uint32, 2*members),
		sig:     make(map[uint64]uint32, members),
		encMore: make(map[uint64][]uint32),
		sigMore: make(map[uint64][]uint32),
	}
	for l, enc := range t.leaves {
		k.addLeaf(uint32(l), enc)
	}
	for i, p := range t.parents {
		k.addParent(uint32(2*i+1), p)
	}
	t.keys = k
	return k
}

// findEnc returns the nodes other than except holding encryption key key,
// appending to dst; t.mu is held.
func (t *Tree) findEnc(dst []uint32, key []byte, except uint32) []uint32 {
	k := t.index()
	h := k.hash(key)
	check := func(x uint32) {
		if x != except && bytes.Equal(t.EncryptionKey(treemath.NodeIndex(x)), key) {
			dst = append(dst, x)
		}
	}
	if x, ok := k.enc[h]; ok {
		check(x)
	}
	for _, x := range k.encMore[h] {
		check(x)
	}
	return dst
}

// findSig returns the leaves other than except holding signature key key;
// t.mu is held.
func (t *Tree) findSig(dst []uint32, key []byte, except uint32) []uint32 {
	k := t.index()
	h := k.hash(key)
	check := func(l uint32) {
		if l != except && bytes.Equal(t.SignatureKey(treemath.LeafIndex(l)), key) {
			dst = append(dst, l)
		}
	}
	if l, ok := k.sig[h]; ok {
		check(l)
	}
	for _, l := range k.sigMore[h] {
		check(l)
	}
	return dst
}

// noNode is an index no node has, for findEnc and findSig.
const noNode = ^uint32(0)

// FindEncryptionKey returns a node (leaf or parent) holding encryption key
// key. The first call builds an index of every key of the tree, in O(N);
// later calls and changes to the tree keep it current in O(1).
func (t *Tree) FindEncryptionKey(key []byte) (treemath.NodeIndex, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var buf [2]uint32
	if xs := t.findEnc(buf[:0], key, noNode); len(xs) > 0 {
		return treemath.NodeIndex(slices.Min(xs)), true
	}
	return 0, false
}

// FindSignatureKey returns a leaf holding signature key key, with the same
// index as FindEncryptionKey.
func (t *Tree) FindSignatureKey(key []byte) (treemath.LeafIndex, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var buf [2]uint32
	if ls := t.findSig(buf[:0], key, noNode); len(ls) > 0 {
		return treemath.LeafIndex(slices.Min(ls)), true
	}
	return 0, false
}

// duplicateKeys reports the first pair of nodes sharing an encryption key,
// or of leaves sharing a signature key; t.mu is held.
func (t *Tree) duplicateKeys() error {
	k := t.index()
	for _, xs := range sortedLists(k.encMore) {
		for i, a := range xs {
			for _, b := range xs[i+1:] {
				if bytes.Equal(t.EncryptionKey(treemath.NodeIndex(a)), t.EncryptionKey(treemath.NodeIndex(b))) {
					return invalidf(ErrDuplicateEncryptionKey, "nodes %d and %d", min(a, b), max(a, b))
				}
			}
		}
	}
	for _, ls := range sortedLists(k.sigMore) {
		for i, a := range ls {
			for _, b := range ls[i+1:] {
				if bytes.Equal(t.SignatureKey(treemath.LeafIndex(a)), t.SignatureKey(treemath.LeafIndex(b))) {
					return invalidf(ErrDuplicateSignatureKey, "leaves %d and %d", min(a, b), max(a, b))
				}
			}
		}
	}
	return nil
}

// sortedLists returns the lists of more ordered by their smallest entry, so
// that errors name the same nodes on every run.
func sortedLists(more map[uint64][]uint32) [][]uint32 {
	out := make([][]uint32, 0, len(more))
	for _, xs := range more {
		out = append(out, xs)
	}
	slices.SortFunc(out, func(a, b []uint32) int { return cmp.Compare(slices.Min(a), slices.Min(b)) })
	return out
}
