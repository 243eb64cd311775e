package group

import (
	"bytes"
	"cmp"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"slices"
	"strconv"
	"strings"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// The member's TreeKEM private state is stored as one record per HPKE
// private key, hpke/<node>/<id> (privRecords, persist.HPKEName). A restored group keeps
// them as they are and decodes them when a commit first needs them
// (privState): decoding derives each public key, about 25 µs a key for
// X25519 and more for the NIST curves, which a load for decrypting
// application messages need not pay.

// storedPriv is a restored private state not decoded yet: the records'
// values, and the public key each node had in the tree when it was
// restored, which the decoded keys must match (treekem's Check, done
// against the tree as it was).
type storedPriv struct {
	keys map[string]secret.Secret      // record name -> HPKE private key
	pubs map[treemath.NodeIndex][]byte // node -> encryption_key at restore
}

func (sp *storedPriv) clear() {
	for _, k := range sp.keys {
		k.Clear()
	}
}

// restorePriv keeps the hpke/ records for privState, checking their names
// and that the leaf's key is among them.
func (rs *restorer) restorePriv(g *Group) error {
	sp := &storedPriv{keys: map[string]secret.Secret{}, pubs: map[treemath.NodeIndex][]byte{}}
	leafNode := uint64(2 * uint32(g.own))
	haveLeaf := false
	for name, v := range rs.key {
		rest, ok := strings.CutPrefix(name, persist.HPKENamePrefix)
		if !ok {
			continue
		}
		ns, _, _ := strings.Cut(rest, "/")
		n, err := strconv.ParseUint(ns, 10, 32)
		if err != nil {
			sp.clear()
			return corrupt(name, err)
		}
		kb, err := persist.OpenSecret(v, persist.ValueVersion, -1)
		if err != nil {
			sp.clear()
			return corrupt(name, err)
		}
		sp.keys[name] = kb
		sp.pubs[treemath.NodeIndex(n)] = g.tree.EncryptionKey(treemath.NodeIndex(n))
		haveLeaf = haveLeaf || n == leafNode
	}
	if !haveLeaf {
		sp.clear()
		return fmt.Errorf("%w: no leaf private key", ErrCorruptState)
	}
	g.stored = sp
	return nil
}

// privState returns the member's TreeKEM private state, decoding a
// restored one first.
func (g *Group) privState() (*treekem.PrivateState, error) {
	if g.stored == nil {
		return g.priv, nil
	}
	sp := g.stored
	var leafKey *ciphersuite.HPKEPrivateKey
	var nodes []treekem.NodeKey
	leafNode := treemath.NodeIndex(2 * uint32(g.own))
	for name, kb := range sp.keys {
		ns, _, _ := strings.Cut(strings.TrimPrefix(name, persist.HPKENamePrefix), "/")
		n64, _ := strconv.ParseUint(ns, 10, 32) // checked by restorePriv
		n := treemath.NodeIndex(n64)
		k, err := g.suite.ParseHPKEPrivateKey(kb.Bytes())
		if err == nil && (sp.pubs[n] == nil || !bytes.Equal(k.PublicKey(), sp.pubs[n])) {
			err = fmt.Errorf("node %d: the key's public half is not the node's encryption_key", n)
		}
		if err != nil {
			return nil, corrupt(name, err)
		}
		if n == leafNode {
			leafKey = k
		} else {
			nodes = append(nodes, treekem.NodeKey{Node: n, Key: k})
		}
	}
	slices.SortFunc(nodes, func(a, b treekem.NodeKey) int { return cmp.Compare(a.Node, b.Node) })
	ps, err := treekem.NewPrivateState(g.suite, g.own, leafKey, nodes)
	if err != nil {
		return nil, corrupt("hpke", err)
	}
	sp.clear()
	g.stored, g.priv = nil, ps
	return ps, nil
}

// logPrivRecords logs the records of the member's private state.
func (g *Group) logPrivRecords() {
	if g.stored != nil {
		for name, kb := range g.stored.keys {
			g.log.own(groupScope, storage.KeyMaterial, name, persist.ValueEnvelope(persist.ValueVersion, kb.Bytes()))
		}
		return
	}
	for name, v := range privRecords(g.suite, g.priv) {
		g.log.own(groupScope, storage.KeyMaterial, name, v)
	}
}

// setPriv replaces the member's TreeKEM private state and logs the HPKE
// keys that appeared and died.
func (g *Group) setPriv(ps *treekem.PrivateState) {
	old := privRecords(g.suite, g.priv)
	if g.stored != nil {
		for name := range g.stored.keys {
			old[name] = nil
		}
		g.stored.clear()
		g.stored = nil
	}
	nw := privRecords(g.suite, ps)
	for name, v := range old {
		if _, ok := nw[name]; !ok {
			g.log.del(groupScope, storage.KeyMaterial, name)
		}
		clear(v)
	}
	for name, v := range nw {
		if _, ok := old[name]; !ok {
			g.log.own(groupScope, storage.KeyMaterial, name, v)
		} else {
			clear(v)
		}
	}
	if g.priv != nil && g.priv != ps {
		g.priv.Clear()
	}
	g.priv = ps
}
