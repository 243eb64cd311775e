package group

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// The persisted form of a group. Every record is in GroupScope unless
// noted. Values are MLS structures in their RFC 9420 encoding or small
// TLS-presentation-language envelopes (package codec) that start with a
// version byte where they are not MLS structures.
//
//	Class        Name                              Value
//	Public       join-config                       Config's persisted fields
//	Public       state                             status, own leaf, committed ReInit
//	Public       context                           GroupContext (§8.1)
//	Public       transcript/interim                interim_transcript_hash
//	Public       confirmation-tag                  confirmation_tag
//	Public       tree/size                         leaf count, chunk size
//	Public       tree/<chunk size>/<k>             nodes [k*size, (k+1)*size) as optional<Node>
//	Public       proposal/<ref>                    queue position, AuthenticatedContent
//	Public       pending-commit                    AuthenticatedContent of the own pending commit
//	Public       past/<e>/context                  GroupContext of retained past epoch e
//	Public       past/<e>/members/<k>              signature keys of its leaves [1024k, 1024(k+1))
//	KeyMaterial  epoch/<e>/secrets                 exporter, external, confirmation, membership,
//	                                               epoch authenticator and init secrets (§8)
//	KeyMaterial  epoch/<e>/sender-data             sender_data_secret (§6.3.2)
//	KeyMaterial  epoch/<e>/tree/<node>/<-|l|r>     secret tree node not yet fully used (§9)
//	KeyMaterial  epoch/<e>/ratchet/<leaf>/<h|a>/<g> sender ratchet secret of generation g (§9.1)
//	KeyMaterial  epoch/<e>/key/<leaf>/<h|a>/<g>    key and nonce of a skipped generation g
//	KeyMaterial  resumption/<e>                    resumption_psk (§8.6)
//	KeyMaterial  hpke/<node>/<id>                  HPKE private key of a tree node (§4.2)
//	KeyMaterial  pending-update/<ref>              leaf private key of an own Update proposal
//	KeyMaterial  pending-commit/secrets            commit secret and new HPKE keys of the pending commit
//	(client) Public/KeyMaterial key-package/<ref>  see KeyPackageBundle.Records
//
// Key material names change whenever the secret does, so that every secret
// dies by an explicit deletion.

const (
	stateVersion   = 1
	pastChunk      = 1024
	minTreeChunk   = 64
	maxTreeRecords = 256
)

func epochName(e uint64, what string) string {
	return "epoch/" + strconv.FormatUint(e, 10) + "/" + what
}

func resumptionName(e uint64) string { return "resumption/" + strconv.FormatUint(e, 10) }

func pastName(e uint64, what string) string {
	return "past/" + strconv.FormatUint(e, 10) + "/" + what
}

// TakeChanges returns the changes to the group's records since the last
// call (or since the group was created, joined or restored) and forgets
// them. A storage layer applies them as one atomic unit after each
// operation. The caller owns the values and clears the key material once
// stored (Changes.Clear).
func (g *Group) TakeChanges() Changes { return g.log.take() }

// Records returns the group's whole persisted state. Restore rebuilds
// the group from it. The caller owns the values and clears the key
// material once stored.
func (g *Group) Records() []Record {
	saved := g.log
	g.log = newChangeLog()
	defer func() { g.log = saved }()
	g.log.put(GroupScope, Public, "join-config", g.cfg.marshal())
	g.logState()
	w := g.tree.Width()
	cs := treeChunk(w)
	for k := uint32(0); uint64(k)*uint64(cs) < uint64(w); k++ {
		g.log.put(GroupScope, Public, treeChunkName(cs, k), g.treeChunkValue(cs, k))
	}
	g.logTreeSize(cs)
	if g.secrets != nil {
		g.log.put(GroupScope, KeyMaterial, epochName(g.ctx.Epoch, "secrets"), g.secrets.marshal())
	}
	for _, m := range append(slices.Clone(g.past), g.cur) {
		if m == nil {
			continue
		}
		g.log.put(GroupScope, KeyMaterial, epochName(m.epoch, "sender-data"), m.senderData.Bytes())
		for _, r := range m.tree.records() {
			g.log.put(r.Scope, r.Class, r.Name, r.Value)
			clear(r.Value)
		}
		if m.ctx != nil {
			g.logPast(m)
		}
	}
	for _, r := range g.resumption {
		g.log.put(GroupScope, KeyMaterial, resumptionName(r.epoch), r.psk.Bytes())
	}
	for name, v := range privRecords(g.suite, g.priv) {
		g.log.put(GroupScope, KeyMaterial, name, v)
		clear(v)
	}
	for i, q := range g.queue.list {
		g.log.put(GroupScope, Public, "proposal/"+refName(q.ref), queuedValue(i, q))
	}
	for name, k := range g.updates {
		kb := k.Bytes()
		g.log.put(GroupScope, KeyMaterial, "pending-update/"+name, kb.Bytes())
		kb.Clear()
	}
	if g.pending != nil {
		g.logPending()
	}
	return g.log.take().Puts
}

func queuedValue(seq int, q *queuedProposal) []byte {
	w := codec.NewWriter(len(q.ac.Bytes()) + 4)
	w.Uint32(uint32(seq))
	w.Raw(q.ac.Bytes())
	return w.Bytes()
}

// logState logs the small public records of the current state.
func (g *Group) logState() {
	w := codec.NewWriter(32)
	w.Uint8(stateVersion)
	w.Uint8(uint8(g.status))
	w.Uint32(uint32(g.own))
	w.Optional(g.reinit != nil, func(w *codec.Writer) { g.reinit.MarshalMLS(w) })
	g.log.put(GroupScope, Public, "state", w.Bytes())
	g.log.put(GroupScope, Public, "context", g.ctx.Bytes())
	g.log.put(GroupScope, Public, "transcript/interim", g.interim)
	g.log.put(GroupScope, Public, "confirmation-tag", g.confTag)
}

// treeChunk is the number of nodes per tree record for a tree of width
// nodes: at least minTreeChunk, and at most maxTreeRecords records.
func treeChunk(width uint32) uint32 {
	cs := uint32(minTreeChunk)
	for uint64(cs)*maxTreeRecords < uint64(width) {
		cs *= 2
	}
	return cs
}

func treeChunkName(cs, k uint32) string {
	return "tree/" + strconv.FormatUint(uint64(cs), 10) + "/" + strconv.FormatUint(uint64(k), 10)
}

func (g *Group) treeChunkValue(cs, k uint32) []byte {
	w := codec.NewWriter(int(cs) * 64)
	end := min(uint64(k+1)*uint64(cs), uint64(g.tree.Width()))
	for x := uint64(k) * uint64(cs); x < end; x++ {
		n := treemath.NodeIndex(x)
		switch {
		case g.tree.IsBlank(n):
			w.Uint8(0)
		case x%2 == 0:
			w.Uint8(1)
			w.Uint8(uint8(wire.NodeTypeLeaf))
			w.Raw(g.tree.LeafBytes(treemath.LeafIndex(x / 2)))
		default:
			w.Uint8(1)
			w.Uint8(uint8(wire.NodeTypeParent))
			g.tree.ParentNode(n).MarshalMLS(w)
		}
	}
	return w.Bytes()
}

func (g *Group) logTreeSize(cs uint32) {
	w := codec.NewWriter(8)
	w.Uint32(uint32(g.tree.LeafCount()))
	w.Uint32(cs)
	g.log.put(GroupScope, Public, "tree/size", w.Bytes())
}

// logFullTree logs every tree record, deleting those of the previous
// layout.
func (g *Group) logFullTree() {
	for k := uint32(0); g.storedCS > 0 && uint64(k)*uint64(g.storedCS) < uint64(g.storedWidth); k++ {
		g.log.del(GroupScope, Public, treeChunkName(g.storedCS, k))
	}
	w := g.tree.Width()
	cs := treeChunk(w)
	for k := uint32(0); uint64(k)*uint64(cs) < uint64(w); k++ {
		g.log.put(GroupScope, Public, treeChunkName(cs, k), g.treeChunkValue(cs, k))
	}
	g.logTreeSize(cs)
	g.storedCS, g.storedWidth = cs, w
	g.tree.ResetChanged()
}

// logTreeChanges logs the tree records holding nodes changed since the
// last log (ratchettree's change set): O(log N) records per commit.
func (g *Group) logTreeChanges() {
	w := g.tree.Width()
	cs := treeChunk(w)
	if cs != g.storedCS {
		g.logFullTree()
		return
	}
	chunks := map[uint32]bool{}
	for _, n := range g.tree.Changed() {
		chunks[uint32(n)/cs] = true
	}
	for k := range chunks {
		if uint64(k)*uint64(cs) < uint64(w) {
			g.log.put(GroupScope, Public, treeChunkName(cs, k), g.treeChunkValue(cs, k))
		}
	}
	for k := uint32(0); uint64(k)*uint64(cs) < uint64(g.storedWidth); k++ {
		if uint64(k)*uint64(cs) >= uint64(w) {
			g.log.del(GroupScope, Public, treeChunkName(cs, k))
		}
	}
	g.logTreeSize(cs)
	g.storedWidth = w
	g.tree.ResetChanged()
}

// logPast logs the public records of a retained past epoch.
func (g *Group) logPast(m *msgEpoch) {
	g.log.put(GroupScope, Public, pastName(m.epoch, "context"), m.ctx.Bytes())
	for k := 0; k*pastChunk < len(m.sigKeys); k++ {
		w := codec.NewWriter(pastChunk * 34)
		for _, sk := range m.sigKeys[k*pastChunk : min((k+1)*pastChunk, len(m.sigKeys))] {
			w.Optional(sk != nil, func(w *codec.Writer) { w.VarBytes(sk) })
		}
		g.log.put(GroupScope, Public, pastName(m.epoch, "members/"+strconv.Itoa(k)), w.Bytes())
	}
}

func (g *Group) unlogPast(m *msgEpoch) {
	g.log.del(GroupScope, Public, pastName(m.epoch, "context"))
	for k := 0; k*pastChunk < len(m.sigKeys); k++ {
		g.log.del(GroupScope, Public, pastName(m.epoch, "members/"+strconv.Itoa(k)))
	}
}

// privRecords returns the records of a TreeKEM private state: one per
// HPKE key, named by node and a short hash of the public key, so that a
// key that survives an epoch keeps its record.
func privRecords(suite *ciphersuite.Suite, ps *treekem.PrivateState) map[string][]byte {
	out := map[string][]byte{}
	if ps == nil || ps.LeafKey() == nil {
		return out
	}
	add := func(n treemath.NodeIndex, k *ciphersuite.HPKEPrivateKey) {
		h := suite.Hash(k.PublicKey())
		kb := k.Bytes()
		out["hpke/"+strconv.FormatUint(uint64(n), 10)+"/"+hex.EncodeToString(h[:8])] = slices.Clone(kb.Bytes())
		kb.Clear()
	}
	add(treemath.NodeIndex(2*uint32(ps.Leaf())), ps.LeafKey())
	for _, nk := range ps.Nodes() {
		add(nk.Node, nk.Key)
	}
	return out
}

func (g *Group) logPending() {
	pc := g.pending
	g.log.put(GroupScope, Public, "pending-commit", pc.ac.Bytes())
	w := codec.NewWriter(256)
	w.Uint8(stateVersion)
	w.VarBytes(pc.commitSecret.Bytes())
	priv := pc.staged.priv
	w.Uint32(uint32(priv.Leaf()))
	lk := priv.LeafKey().Bytes()
	w.VarBytes(lk.Bytes())
	lk.Clear()
	w.Vector(func(w *codec.Writer) {
		for _, nk := range priv.Nodes() {
			w.Uint32(uint32(nk.Node))
			kb := nk.Key.Bytes()
			w.VarBytes(kb.Bytes())
			kb.Clear()
		}
	})
	v := w.Bytes()
	g.log.put(GroupScope, KeyMaterial, "pending-commit/secrets", v)
	clear(v)
}

func (g *Group) unlogPending() {
	g.log.del(GroupScope, Public, "pending-commit")
	g.log.del(GroupScope, KeyMaterial, "pending-commit/secrets")
}

// Restore rebuilds a group from its records (Records, or the records a
// storage layer kept by applying every TakeChanges). cfg supplies the
// fields that are not persisted (Rand, Now, PSKs, ValidateCredential);
// signer is the member's signing key. The state is checked for
// consistency (tree hash, private keys against the tree).
func Restore(cfg *Config, signer *ciphersuite.SigningKey, records []Record) (*Group, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	rs := &restorer{pub: map[string][]byte{}, key: map[string][]byte{}}
	for _, r := range records {
		if r.Scope != GroupScope {
			continue
		}
		if r.Class == Public {
			rs.pub[r.Name] = r.Value
		} else {
			rs.key[r.Name] = r.Value
			rs.keyRecords = append(rs.keyRecords, r)
		}
	}
	g, err := rs.restore(cfg, signer)
	if err != nil {
		return nil, err
	}
	return g, nil
}

type restorer struct {
	pub, key   map[string][]byte
	keyRecords []Record
}

func (rs *restorer) need(m map[string][]byte, name string) ([]byte, error) {
	v, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%w: missing record %q", ErrCorruptState, name)
	}
	return v, nil
}

func corrupt(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrCorruptState, what, err)
}

func (rs *restorer) restore(cfg *Config, signer *ciphersuite.SigningKey) (*Group, error) {
	c := *cfg
	v, err := rs.need(rs.pub, "join-config")
	if err != nil {
		return nil, err
	}
	if err := c.unmarshal(v); err != nil {
		return nil, err
	}
	v, err = rs.need(rs.pub, "context")
	if err != nil {
		return nil, err
	}
	gc, err := wire.Unmarshal[wire.GroupContext](v)
	if err != nil {
		return nil, corrupt("context", err)
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(gc.CipherSuite))
	if err != nil {
		return nil, corrupt("context", err)
	}
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signing key", ErrInvalidArgument)
	}
	g := newGroup(&c, suite, signer)
	g.log = newChangeLog()
	g.ctx = *gc

	// state
	v, err = rs.need(rs.pub, "state")
	if err != nil {
		return nil, err
	}
	r := codec.NewReader(v)
	if r.Uint8() != stateVersion {
		return nil, corrupt("state", fmt.Errorf("unknown version"))
	}
	g.status = Status(r.Uint8())
	g.own = treemath.LeafIndex(r.Uint32())
	r.Optional(func(r *codec.Reader) {
		g.reinit = &wire.ReInit{}
		g.reinit.UnmarshalMLS(r)
	})
	if err := r.Finish(); err != nil || g.status < StatusActive || g.status > StatusReInit {
		return nil, corrupt("state", fmt.Errorf("%v", err))
	}
	if g.interim, err = rs.need(rs.pub, "transcript/interim"); err != nil {
		return nil, err
	}
	if g.confTag, err = rs.need(rs.pub, "confirmation-tag"); err != nil {
		return nil, err
	}
	g.interim, g.confTag = slices.Clone(g.interim), slices.Clone(g.confTag)

	// tree
	if err := rs.restoreTree(g); err != nil {
		return nil, err
	}
	if g.status != StatusRemoved {
		if err := g.tree.CheckTreeHash(g.ctx.TreeHash); err != nil {
			return nil, corrupt("tree", err)
		}
	}

	// epoch secrets and message secrets
	if v, ok := rs.key[epochName(g.ctx.Epoch, "secrets")]; ok && g.status != StatusRemoved {
		if g.secrets, err = unmarshalEpochSecrets(suite, v); err != nil {
			return nil, err
		}
	}
	if err := rs.restoreMessages(g); err != nil {
		return nil, err
	}
	for name, v := range rs.key {
		if e, ok := strings.CutPrefix(name, "resumption/"); ok {
			n, err := strconv.ParseUint(e, 10, 64)
			if err != nil || len(v) != suite.HashLen() {
				return nil, corrupt(name, fmt.Errorf("bad record"))
			}
			g.resumption = append(g.resumption, resumptionPSK{epoch: n, psk: secret.Copy(v)})
		}
	}
	slices.SortFunc(g.resumption, func(a, b resumptionPSK) int { return cmp.Compare(a.epoch, b.epoch) })

	// TreeKEM private state
	if g.status != StatusRemoved {
		if err := rs.restorePriv(g); err != nil {
			return nil, err
		}
	}

	// queued proposals, own Update keys, pending commit
	type seqd struct {
		seq uint32
		q   *queuedProposal
	}
	var qs []seqd
	for name, v := range rs.pub {
		ref, ok := strings.CutPrefix(name, "proposal/")
		if !ok {
			continue
		}
		rb, err := hex.DecodeString(ref)
		if err != nil || len(v) < 4 {
			return nil, corrupt(name, fmt.Errorf("bad record"))
		}
		ac, err := wire.Unmarshal[wire.AuthenticatedContent](v[4:])
		if err != nil {
			return nil, corrupt(name, err)
		}
		qs = append(qs, seqd{seq: uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3]), q: &queuedProposal{ref: rb, ac: ac}})
	}
	slices.SortFunc(qs, func(a, b seqd) int { return cmp.Compare(a.seq, b.seq) })
	for _, s := range qs {
		g.enqueue(s.q)
	}
	for name, v := range rs.key {
		ref, ok := strings.CutPrefix(name, "pending-update/")
		if !ok {
			continue
		}
		k, err := suite.ParseHPKEPrivateKey(v)
		if err != nil {
			return nil, corrupt(name, err)
		}
		if g.updates == nil {
			g.updates = map[string]*ciphersuite.HPKEPrivateKey{}
		}
		g.updates[ref] = k
	}
	if v, ok := rs.pub["pending-commit"]; ok {
		if err := rs.restorePending(g, v); err != nil {
			return nil, err
		}
	}
	g.log.discard()
	return g, nil
}

func (rs *restorer) restoreTree(g *Group) error {
	v, err := rs.need(rs.pub, "tree/size")
	if err != nil {
		return err
	}
	r := codec.NewReader(v)
	n, cs := r.Uint32(), r.Uint32()
	if err := r.Finish(); err != nil || n == 0 || cs == 0 {
		return corrupt("tree/size", fmt.Errorf("%v", err))
	}
	width := uint64(2*n - 1)
	nodes := make(wire.RatchetTree, width)
	for k := uint64(0); k*uint64(cs) < width; k++ {
		name := treeChunkName(cs, uint32(k))
		v, ok := rs.pub[name]
		if !ok {
			continue
		}
		r := codec.NewReader(v)
		for x := k * uint64(cs); x < min((k+1)*uint64(cs), width) && !r.Empty(); x++ {
			r.Optional(func(r *codec.Reader) {
				nd := &wire.Node{}
				nd.UnmarshalMLS(r)
				nodes[x] = nd
			})
		}
		if err := r.Finish(); err != nil {
			return corrupt(name, err)
		}
	}
	for len(nodes) > 0 && nodes[len(nodes)-1] == nil {
		nodes = nodes[:len(nodes)-1]
	}
	t, err := ratchettree.FromWire(g.suite, nodes)
	if err != nil {
		return corrupt("tree", err)
	}
	g.tree = t
	g.storedCS, g.storedWidth = cs, t.Width()
	t.ResetChanged()
	return nil
}

func (rs *restorer) restoreMessages(g *Group) error {
	epochs := map[uint64]bool{}
	for name := range rs.key {
		rest, ok := strings.CutPrefix(name, "epoch/")
		if !ok || !strings.HasSuffix(rest, "/sender-data") {
			continue
		}
		e, err := strconv.ParseUint(strings.TrimSuffix(rest, "/sender-data"), 10, 64)
		if err != nil {
			return corrupt(name, err)
		}
		epochs[e] = true
	}
	var sorted []uint64
	for e := range epochs {
		sorted = append(sorted, e)
	}
	slices.Sort(sorted)
	for _, e := range sorted {
		m := &msgEpoch{epoch: e, senderData: secret.Copy(rs.key[epochName(e, "sender-data")])}
		leaves := g.tree.LeafCount()
		if e != g.ctx.Epoch || g.status == StatusRemoved {
			v, err := rs.need(rs.pub, pastName(e, "context"))
			if err != nil {
				return err
			}
			if m.ctx, err = wire.Unmarshal[wire.GroupContext](v); err != nil {
				return corrupt(pastName(e, "context"), err)
			}
			for k := 0; ; k++ {
				v, ok := rs.pub[pastName(e, "members/"+strconv.Itoa(k))]
				if !ok {
					break
				}
				r := codec.NewReader(v)
				for !r.Empty() {
					var sk []byte
					r.Optional(func(r *codec.Reader) { sk = r.VarBytes() })
					m.sigKeys = append(m.sigKeys, sk)
				}
				if err := r.Finish(); err != nil {
					return corrupt("past members", err)
				}
			}
			leaves = treemath.LeafCount(len(m.sigKeys))
		}
		var err error
		m.tree, err = restoreMsgTree(g.suite, e, leaves, g.cfg.tolerance(), g.cfg.maxForward(), rs.keyRecords, g.log)
		if err != nil {
			return err
		}
		if m.ctx != nil {
			g.past = append(g.past, m)
		} else {
			g.cur = m
		}
	}
	if g.cur == nil && g.status != StatusRemoved {
		return fmt.Errorf("%w: no message secrets for the current epoch", ErrCorruptState)
	}
	return nil
}

func (rs *restorer) restorePriv(g *Group) error {
	var leafKey *ciphersuite.HPKEPrivateKey
	var nodes []treekem.NodeKey
	leafNode := uint64(2 * uint32(g.own))
	for name, v := range rs.key {
		rest, ok := strings.CutPrefix(name, "hpke/")
		if !ok {
			continue
		}
		ns, _, _ := strings.Cut(rest, "/")
		n, err := strconv.ParseUint(ns, 10, 32)
		if err != nil {
			return corrupt(name, err)
		}
		k, err := g.suite.ParseHPKEPrivateKey(v)
		if err != nil {
			return corrupt(name, err)
		}
		if n == leafNode {
			leafKey = k
		} else {
			nodes = append(nodes, treekem.NodeKey{Node: treemath.NodeIndex(n), Key: k})
		}
	}
	if leafKey == nil {
		return fmt.Errorf("%w: no leaf private key", ErrCorruptState)
	}
	slices.SortFunc(nodes, func(a, b treekem.NodeKey) int { return cmp.Compare(a.Node, b.Node) })
	ps, err := treekem.NewPrivateState(g.suite, g.own, leafKey, nodes)
	if err != nil {
		return corrupt("hpke", err)
	}
	if err := ps.Check(g.tree); err != nil {
		return corrupt("hpke", err)
	}
	g.priv = ps
	return nil
}

// restorePending rebuilds the own pending commit from its content and
// secrets, re-running the steps that do not need randomness and checking
// the confirmation tag.
func (rs *restorer) restorePending(g *Group, acBytes []byte) error {
	ac, err := wire.Unmarshal[wire.AuthenticatedContent](acBytes)
	if err != nil || ac.Content.Commit == nil {
		return corrupt("pending-commit", fmt.Errorf("%v", err))
	}
	v, err := rs.need(rs.key, "pending-commit/secrets")
	if err != nil {
		return err
	}
	r := codec.NewReader(v)
	ver := r.Uint8()
	commitSecret := secret.Copy(r.VarBytes())
	leaf := treemath.LeafIndex(r.Uint32())
	lk := r.VarBytes()
	var nodes []treekem.NodeKey
	var perr error
	r.VectorEach(func(r *codec.Reader) {
		n := treemath.NodeIndex(r.Uint32())
		kb := r.VarBytes()
		if r.Err() != nil {
			return
		}
		k, err := g.suite.ParseHPKEPrivateKey(kb)
		if err != nil {
			perr = err
			return
		}
		nodes = append(nodes, treekem.NodeKey{Node: n, Key: k})
	})
	if err := r.Finish(); err != nil || ver != stateVersion || perr != nil {
		commitSecret.Clear()
		return corrupt("pending-commit/secrets", fmt.Errorf("%v %v", err, perr))
	}
	leafKey, err := g.suite.ParseHPKEPrivateKey(lk)
	if err != nil {
		commitSecret.Clear()
		return corrupt("pending-commit/secrets", err)
	}
	priv, err := treekem.NewPrivateState(g.suite, leaf, leafKey, nodes)
	if err != nil {
		commitSecret.Clear()
		return corrupt("pending-commit/secrets", err)
	}
	if err := g.restagePending(ac, commitSecret, priv); err != nil {
		commitSecret.Clear()
		return corrupt("pending-commit", err)
	}
	return nil
}

// restagePending recomputes the epoch of the member's own pending commit.
func (g *Group) restagePending(ac *wire.AuthenticatedContent, commitSecret secret.Secret, priv *treekem.PrivateState) error {
	committer := wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: uint32(g.own)}
	var entries []proposalEntry
	for _, por := range ac.Content.Commit.Proposals {
		if por.Type == wire.ProposalOrRefTypeReference {
			q := g.queue.find(por.Reference)
			if q == nil {
				return ErrUnknownProposal
			}
			entries = append(entries, proposalEntry{p: q.ac.Content.Proposal, sender: q.ac.Content.Sender, ref: q.ref})
		} else {
			entries = append(entries, proposalEntry{p: por.Proposal, sender: committer})
		}
	}
	tree := g.tree
	ck := tree.Checkpoint()
	defer tree.Rollback(ck)
	res, err := g.applyProposals(tree, entries, committer, validateOptions{})
	if err != nil {
		return err
	}
	sc := g.newStaged(committer, entries, res)
	sc.path = ac.Content.Commit.Path
	if path := ac.Content.Commit.Path; path != nil {
		if err := publicMerge(tree, g.own, path); err != nil {
			return err
		}
		if err := priv.Check(tree); err != nil {
			return err
		}
		sc.priv = priv
	} else if sc.priv, err = keepValidKeys(g.priv, tree, nil); err != nil {
		return err
	}
	init, err := g.secrets.nextInit()
	if err != nil {
		return err
	}
	if _, err := g.finishEpoch(sc, tree, ac, init, commitSecret, validateOptions{}, false); err != nil {
		sc.discard()
		return err
	}
	g.pending = &pendingCommit{staged: sc, ac: ac, commitSecret: commitSecret}
	return nil
}
