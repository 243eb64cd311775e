package group

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"math"
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

// The persisted form of a group, in storage's records. Every record is in
// the group's scope unless noted. A value is either an MLS structure in its
// RFC 9420 encoding (v "-" below) or an envelope of package persist: a
// MessagePack array whose element 0 is the layout version v, followed by
// the fields listed. "bin" is a MessagePack bin, "?" marks a field that is nil
// when absent. MLS structures inside envelopes are bins holding their RFC
// 9420 encoding, so that the bytes a signature or hash reference covers
// (§5.2, §6.1) are the bytes stored. Decoders accept only the version v.
//
//	Class        Name                           v  Value
//	Public       join-config                    1  [v, max_past_epochs uint, resumption_psks uint,
//	                                                out_of_order_tolerance int, max_forward_distance int,
//	                                                padding_block uint, encrypt_handshake bool,
//	                                                ratchet_tree_extension bool, key_package_lifetime int,
//	                                                max_leaf_lifetime int]: Config's persisted fields,
//	                                                durations in nanoseconds
//	Public       state                          1  [v, status uint, own leaf index uint,
//	                                                ?bin committed ReInit (§12.1.5)]
//	Public       context                        -  GroupContext (§8.1)
//	Public       transcript/interim             1  [v, bin interim_transcript_hash (§8.2)]
//	Public       confirmation-tag               1  [v, bin confirmation_tag (§6.1)]
//	Public       tree/size                      2  [v, leaf count uint] (layout 1: [1, leaf count uint,
//	                                                chunk size uint])
//	Public       tree/t/<r>                     1  [v, bin hashes, bin nodes]: the tile of node r, its
//	                                                nodes and their tree hashes (treerecords.go)
//	Public       tree/x/<node>                  -  LeafNode or ParentNode of a node too large for its tile
//	Public       tree/<chunk size>/<k>          -  layout 1: nodes [k*size, (k+1)*size) of the tree,
//	                                                each an optional<Node> (§12.4.3.3), concatenated
//	Public       proposal/<ref>                 1  [v, queue position uint, bin AuthenticatedContent (§6.1)]
//	Public       pending-commit                 -  AuthenticatedContent of the own pending commit, its
//	                                                first 128 KiB; the rest in pending-commit/more/<k>
//	Public       past/<e>/context               -  GroupContext of retained past epoch e
//	Public       past/<e>/delta/<k>             1  [v, leaf count uint, [leaf uint, ?bin signature_key,
//	                                                ...]]: the leaves of epoch e whose signature key
//	                                                differs in the epoch after it (pastrecords.go)
//	Public       past/<e>/members/<k>           1  layout 1: [v, [?bin signature_key, ...]]: leaves
//	                                                [1024k, 1024(k+1)) of epoch e, nil if blank
//	KeyMaterial  epoch/<e>/secrets              1  [v, bin exporter, bin external, bin confirmation,
//	                                                bin membership, bin epoch_authenticator, bin init]:
//	                                                the secrets of §8 the epoch keeps, Nh bytes each
//	KeyMaterial  epoch/<e>/sender-data          1  [v, bin sender_data_secret (§6.3.2)]
//	KeyMaterial  epoch/<e>/tree/<node>          1  [v, bin secret] of a secret tree node none of
//	                                                whose children is derived yet (§9, §9.2)
//	KeyMaterial  epoch/<e>/ratchet/<leaf>/<h|a>/<g>
//	                                            1  [v, bin sender ratchet secret of generation g (§9.1)],
//	                                                empty once exhausted (g = 2^32)
//	KeyMaterial  epoch/<e>/key/<leaf>/<h|a>/<g> 1  [v, bin key, bin nonce] of a skipped generation g
//	KeyMaterial  resumption/<e>                 1  [v, bin resumption_psk (§8.6)]
//	KeyMaterial  hpke/<node>/<id>               1  [v, bin HPKE private key of a tree node (§4.2)]
//	KeyMaterial  pending-update/<ref>           1  [v, bin leaf HPKE private key of an own Update proposal]
//	KeyMaterial  pending-commit/secrets         1  [v, bin commit_secret, new leaf index uint,
//	                                                bin leaf HPKE private key,
//	                                                [[node uint, bin HPKE private key], ...]]
//	                                                of the pending commit
//	(client) Public       key-package/<ref>     -  KeyPackage (§10), see KeyPackageBundle.Records
//	(client) KeyMaterial  key-package/<ref>     1  [v, bin init private key, bin encryption private key]
//
// HPKE private keys are in the KEM's SerializePrivateKey form (RFC 9180
// §7.1.2). Key material names change whenever the secret does, so that
// every secret dies by an explicit deletion.

// Envelope versions: each layout has its own, so that one can change
// without touching the others.
const (
	configVersion         = 1 // join-config
	stateVersion          = 1 // state
	proposalVersion       = 1 // proposal/<ref>
	pastMembersVersion    = 1 // past/<e>/members/<k>
	valueVersion          = 1 // [v, bin]: transcript/interim, confirmation-tag, sender-data, tree nodes, ratchets, resumption, hpke, pending-update
	epochSecretsVersion   = 1 // epoch/<e>/secrets
	keptKeyVersion        = 1 // epoch/<e>/key/...
	pendingSecretsVersion = 1 // pending-commit/secrets
	keyPackageKeysVersion = 1 // client key-package/<ref> key material
)

// Record sizes. A storage unit on an existing group holds at most 512
// operations of at most 256 KiB each (package storage), whatever the
// group's size: tree tiles are bounded by tileInline; a past epoch's
// delta names pastChunk leaves a record; in layout 1, a change of the
// tree's chunk size rewrites the whole tree (at most maxTreeRecords
// deletions and half as many puts).
const (
	pastChunk      = 1024
	minTreeChunk   = 64
	maxTreeRecords = 128
	// maxStoredTreeRecords is what Restore accepts: the limit of earlier
	// versions.
	maxStoredTreeRecords = 256
	// pendingChunk bounds each record of the pending commit, whose
	// AuthenticatedContent grows with the proposals by value and the
	// UpdatePath (hundreds of KiB for a thousand Adds).
	pendingChunk = 128 << 10
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
func (g *Group) TakeChanges() Changes { return g.log.take(g.ctx.GroupID) }

// Records returns the group's whole persisted state, sorted by
// storage.Key.Compare. Restore rebuilds the group from it. The caller owns
// the values and clears the key material once stored.
func (g *Group) Records() []storage.Record {
	saved := g.log
	g.log = newChangeLog()
	defer func() { g.log = saved }()
	g.log.own(groupScope, storage.Public, "join-config", g.cfg.marshal())
	g.logState()
	if g.storedCS != 0 {
		w := g.tree.Width()
		cs := treeChunk(w)
		for k := uint32(0); uint64(k)*uint64(cs) < uint64(w); k++ {
			g.log.own(groupScope, storage.Public, treeChunkName(cs, k), g.treeChunkValue(cs, k))
		}
		g.log.own(groupScope, storage.Public, "tree/size", chunkSizeValue(uint32(g.tree.LeafCount()), cs))
	} else {
		g.logAllTiles()
	}
	if g.secrets != nil {
		g.log.own(groupScope, storage.KeyMaterial, epochName(g.ctx.Epoch, "secrets"), epochRecord(g.secrets))
	}
	for _, m := range append(slices.Clone(g.past), g.cur) {
		if m == nil {
			continue
		}
		g.logSenderData(m.epoch, m.senderData)
		m.tree.logAll(g.log)
		if m.ctx != nil {
			g.logPast(m)
		}
	}
	for _, r := range g.resumption {
		g.logResumption(r.epoch, r.psk)
	}
	g.logPrivRecords()
	for i, q := range g.queue.list {
		g.log.own(groupScope, storage.Public, "proposal/"+refName(q.ref), queuedValue(i, q.ac.Bytes()))
	}
	for name, k := range g.updates {
		g.logUpdateKey(name, k)
	}
	if g.pending != nil {
		g.logPending()
	}
	return g.log.take(g.ctx.GroupID).Puts
}

// queuedValue is the proposal/<ref> record of the proposal at position
// seq of the queue, whose AuthenticatedContent encodes as ac:
//
//	[proposalVersion, seq uint, bin AuthenticatedContent]
//
// The position keeps the queue's order, which decides the order of the
// proposals in the member's next commit (§12.2).
func queuedValue(seq int, ac []byte) []byte {
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(3)
		e.Uint(proposalVersion)
		e.Uint(uint64(seq))
		e.Bin(ac)
	})
}

// openQueued decodes a record written by queuedValue.
func openQueued(v []byte) (seq uint32, ac []byte, err error) {
	d := persist.NewDecoder(v)
	d.Open(proposalVersion, 2)
	seq = uint32(d.Uint(math.MaxUint32))
	ac = d.Bin(-1)
	return seq, ac, d.Finish()
}

// logSenderData logs the sender_data_secret of epoch e.
func (g *Group) logSenderData(e uint64, s secret.Secret) {
	g.log.own(groupScope, storage.KeyMaterial, epochName(e, "sender-data"), persist.ValueEnvelope(valueVersion, s.Bytes()))
}

// logResumption logs the resumption_psk of epoch e.
func (g *Group) logResumption(e uint64, psk secret.Secret) {
	g.log.own(groupScope, storage.KeyMaterial, resumptionName(e), persist.ValueEnvelope(valueVersion, psk.Bytes()))
}

// logUpdateKey logs the leaf private key of the own Update proposal name.
func (g *Group) logUpdateKey(name string, k *ciphersuite.HPKEPrivateKey) {
	kb := k.Bytes()
	g.log.own(groupScope, storage.KeyMaterial, "pending-update/"+name, persist.ValueEnvelope(valueVersion, kb.Bytes()))
	kb.Clear()
}

// logState logs the small public records of the current state.
func (g *Group) logState() {
	var reinit []byte
	if g.reinit != nil {
		var err error
		if reinit, err = wire.Marshal(g.reinit); err != nil {
			// The ReInit was committed, so it was encoded before.
			panic("group: internal error: encoding the committed ReInit: " + err.Error())
		}
	}
	g.log.own(groupScope, storage.Public, "state", stateValue(g.status, g.own, reinit))
	g.log.own(groupScope, storage.Public, "context", g.ctx.Bytes())
	g.log.own(groupScope, storage.Public, "transcript/interim", persist.ValueEnvelope(valueVersion, g.interim))
	g.log.own(groupScope, storage.Public, "confirmation-tag", persist.ValueEnvelope(valueVersion, g.confTag))
}

// stateValue is the state record, with the encoding of the committed
// ReInit (status StatusReInit) or nil:
//
//	[stateVersion, status uint, own leaf uint, ?bin ReInit]
func stateValue(status Status, own treemath.LeafIndex, reinit []byte) []byte {
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(4)
		e.Uint(stateVersion)
		e.Uint(uint64(status))
		e.Uint(uint64(own))
		if reinit == nil {
			e.Nil()
		} else {
			e.Bin(reinit)
		}
	})
}

// openState decodes a record written by stateValue.
func openState(v []byte) (status Status, own treemath.LeafIndex, reinit []byte, err error) {
	d := persist.NewDecoder(v)
	d.Open(stateVersion, 3)
	status = Status(d.Uint(math.MaxUint8))
	own = treemath.LeafIndex(d.Uint(math.MaxUint32))
	if !d.IsNil() {
		reinit = d.Bin(-1)
	}
	return status, own, reinit, d.Finish()
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

// logFullChunks logs every tree record of layout 1, deleting those of
// the previous chunk size.
func (g *Group) logFullChunks() {
	for k := uint32(0); g.storedCS > 0 && uint64(k)*uint64(g.storedCS) < uint64(g.storedWidth); k++ {
		g.log.del(groupScope, storage.Public, treeChunkName(g.storedCS, k))
	}
	w := g.tree.Width()
	cs := treeChunk(w)
	for k := uint32(0); uint64(k)*uint64(cs) < uint64(w); k++ {
		g.log.own(groupScope, storage.Public, treeChunkName(cs, k), g.treeChunkValue(cs, k))
	}
	g.log.own(groupScope, storage.Public, "tree/size", chunkSizeValue(uint32(g.tree.LeafCount()), cs))
	g.storedCS, g.storedWidth = cs, w
	g.tree.ResetChanged()
}

// logChunkChanges is logTreeChanges for layout 1: the chunks holding
// nodes changed since the last log.
func (g *Group) logChunkChanges() {
	w := g.tree.Width()
	cs := treeChunk(w)
	if cs != g.storedCS {
		g.logFullChunks()
		return
	}
	chunks := map[uint32]bool{}
	for _, n := range g.tree.Changed() {
		chunks[uint32(n)/cs] = true
	}
	for k := range chunks {
		if uint64(k)*uint64(cs) < uint64(w) {
			g.log.own(groupScope, storage.Public, treeChunkName(cs, k), g.treeChunkValue(cs, k))
		}
	}
	for k := uint32(0); uint64(k)*uint64(cs) < uint64(g.storedWidth); k++ {
		if uint64(k)*uint64(cs) >= uint64(w) {
			g.log.del(groupScope, storage.Public, treeChunkName(cs, k))
		}
	}
	g.log.own(groupScope, storage.Public, "tree/size", chunkSizeValue(uint32(g.tree.LeafCount()), cs))
	g.storedWidth = w
	g.tree.ResetChanged()
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
		out["hpke/"+strconv.FormatUint(uint64(n), 10)+"/"+hex.EncodeToString(h[:8])] = persist.ValueEnvelope(valueVersion, kb.Bytes())
		kb.Clear()
	}
	add(treemath.NodeIndex(2*uint32(ps.Leaf())), ps.LeafKey())
	for _, nk := range ps.Nodes() {
		add(nk.Node, nk.Key)
	}
	return out
}

// logPending logs the own pending commit: its AuthenticatedContent, and
// the secrets that cannot be recomputed from it because they came from
// the randomness of the commit (§12.4: the commit secret, and the new
// TreeKEM private keys of the committer's path).
func (g *Group) logPending() {
	pc := g.pending
	for k, part := range pendingParts(pc.ac.Bytes()) {
		g.log.put(groupScope, storage.Public, pendingPartName(k), part)
	}
	g.log.own(groupScope, storage.KeyMaterial, "pending-commit/secrets", pendingSecretsValue(pc.commitSecret, pc.staged.priv))
}

// pendingSecretsValue is the pending-commit/secrets record:
//
//	[pendingSecretsVersion, bin commit_secret, leaf uint, bin leaf key,
//	 [[node uint, bin key], ...]]
func pendingSecretsValue(commitSecret secret.Secret, priv *treekem.PrivateState) []byte {
	lk := priv.LeafKey().Bytes()
	defer lk.Clear()
	nodes := priv.Nodes()
	keys := make([]secret.Secret, len(nodes))
	for i, nk := range nodes {
		keys[i] = nk.Key.Bytes()
	}
	defer func() {
		for i := range keys {
			keys[i].Clear()
		}
	}()
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(5)
		e.Uint(pendingSecretsVersion)
		e.Bin(commitSecret.Bytes())
		e.Uint(uint64(priv.Leaf()))
		e.Bin(lk.Bytes())
		e.Array(len(nodes))
		for i, nk := range nodes {
			e.Array(2)
			e.Uint(uint64(nk.Node))
			e.Bin(keys[i].Bytes())
		}
	})
}

// openPendingSecrets decodes the pending-commit/secrets record
// (logPending).
func openPendingSecrets(suite *ciphersuite.Suite, v []byte) (secret.Secret, *treekem.PrivateState, error) {
	d := persist.NewDecoder(v)
	d.Open(pendingSecretsVersion, 4)
	// Empty for a commit without a path: the key schedule then uses the
	// zero vector (§8).
	commitSecret := d.Secret(-1)
	if l := commitSecret.Len(); l != 0 && l != suite.HashLen() {
		d.Fail("commit secret of %d bytes", l)
	}
	leaf := treemath.LeafIndex(d.Uint(math.MaxUint32))
	lk := d.Secret(-1)
	defer lk.Clear()
	n := d.Array(math.MaxUint16)
	type nodeKey struct {
		node uint64
		key  secret.Secret
	}
	raw := make([]nodeKey, 0, n)
	defer func() {
		for i := range raw {
			raw[i].key.Clear()
		}
	}()
	for range n {
		if d.Array(2) != 2 {
			d.Fail("node key of the wrong length")
		}
		node := d.Uint(math.MaxUint32)
		k := d.Secret(-1)
		raw = append(raw, nodeKey{node, k})
	}
	if err := d.Finish(); err != nil {
		commitSecret.Clear()
		return secret.Secret{}, nil, err
	}
	leafKey, err := suite.ParseHPKEPrivateKey(lk.Bytes())
	if err != nil {
		commitSecret.Clear()
		return secret.Secret{}, nil, err
	}
	nodes := make([]treekem.NodeKey, 0, len(raw))
	for _, nk := range raw {
		k, err := suite.ParseHPKEPrivateKey(nk.key.Bytes())
		if err != nil {
			commitSecret.Clear()
			return secret.Secret{}, nil, err
		}
		nodes = append(nodes, treekem.NodeKey{Node: treemath.NodeIndex(nk.node), Key: k})
	}
	priv, err := treekem.NewPrivateState(suite, leaf, leafKey, nodes)
	if err == nil && !slices.EqualFunc(priv.Nodes(), nodes, func(a, b treekem.NodeKey) bool { return a.Node == b.Node }) {
		// pendingSecretsValue writes them in the state's order.
		err = fmt.Errorf("node keys out of order")
	}
	if err != nil {
		commitSecret.Clear()
		return secret.Secret{}, nil, err
	}
	return commitSecret, priv, nil
}

// pendingParts splits the pending commit's AuthenticatedContent into
// records of at most pendingChunk bytes.
func pendingParts(b []byte) [][]byte {
	var out [][]byte
	for len(b) > pendingChunk {
		out = append(out, b[:pendingChunk])
		b = b[pendingChunk:]
	}
	return append(out, b)
}

// pendingPartName names part k of the pending commit: "pending-commit"
// for the first, "pending-commit/more/<k>" for the others.
func pendingPartName(k int) string {
	if k == 0 {
		return "pending-commit"
	}
	return "pending-commit/more/" + strconv.Itoa(k)
}

// unlogPending deletes the records of pc, the pending commit that was.
func (g *Group) unlogPending(pc *pendingCommit) {
	for k := range pendingParts(pc.ac.Bytes()) {
		g.log.del(groupScope, storage.Public, pendingPartName(k))
	}
	g.log.del(groupScope, storage.KeyMaterial, "pending-commit/secrets")
}

// Restore rebuilds a group from its records (Records, or the records a
// storage layer kept by applying every TakeChanges). cfg supplies the
// fields that are not persisted (Rand, Now, PSKs, ValidateCredential);
// signer is the member's signing key. The state is checked for
// consistency (tree hash, private keys against the tree). The group keeps
// the values of the public tree records (its leaves are slices of them):
// the caller must not modify them afterwards.
func Restore(cfg *Config, signer *ciphersuite.SigningKey, records []storage.Record) (*Group, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	rs := &restorer{pub: map[string][]byte{}, key: map[string][]byte{}}
	for _, r := range records {
		if !r.Key.Scope.IsGroup() {
			continue
		}
		if r.Key.Class == storage.Public {
			rs.pub[r.Key.Name] = r.Value
		} else {
			rs.key[r.Key.Name] = r.Value
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
	keyRecords []storage.Record
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
	if err := g.restoreState(v); err != nil {
		return nil, err
	}
	if v, err = rs.need(rs.pub, "transcript/interim"); err != nil {
		return nil, err
	}
	if g.interim, err = persist.OpenValue(v, valueVersion, suite.HashLen()); err != nil {
		return nil, corrupt("transcript/interim", err)
	}
	if v, err = rs.need(rs.pub, "confirmation-tag"); err != nil {
		return nil, err
	}
	if g.confTag, err = persist.OpenValue(v, valueVersion, suite.HashLen()); err != nil {
		return nil, corrupt("confirmation-tag", err)
	}

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
		if g.secrets, err = openEpochRecord(suite, v); err != nil {
			return nil, err
		}
	}
	if err := rs.restoreMessages(g); err != nil {
		return nil, err
	}
	for name, v := range rs.key {
		if e, ok := strings.CutPrefix(name, "resumption/"); ok {
			n, err := strconv.ParseUint(e, 10, 64)
			if err != nil {
				return nil, corrupt(name, err)
			}
			psk, err := persist.OpenSecret(v, valueVersion, suite.HashLen())
			if err != nil {
				return nil, corrupt(name, err)
			}
			g.resumption = append(g.resumption, resumptionPSK{epoch: n, psk: psk})
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
		if err != nil {
			return nil, corrupt(name, err)
		}
		seq, acb, err := openQueued(v)
		if err != nil {
			return nil, corrupt(name, err)
		}
		ac, err := wire.Unmarshal[wire.AuthenticatedContent](acb)
		if err != nil {
			return nil, corrupt(name, err)
		}
		qs = append(qs, seqd{seq: seq, q: &queuedProposal{ref: rb, ac: ac}})
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
		k, err := openPrivateKey(suite, v)
		if err != nil {
			return nil, corrupt(name, err)
		}
		if g.updates == nil {
			g.updates = map[string]*ciphersuite.HPKEPrivateKey{}
		}
		g.updates[ref] = k
	}
	if v, ok := rs.pub["pending-commit"]; ok {
		for k := 1; ; k++ {
			more, ok := rs.pub[pendingPartName(k)]
			if !ok {
				break
			}
			v = append(slices.Clip(v), more...)
		}
		if err := rs.restorePending(g, v); err != nil {
			return nil, err
		}
	}
	g.log.discard()
	return g, nil
}

// restoreState decodes the state record (logState).
func (g *Group) restoreState(v []byte) error {
	var reinit []byte
	var err error
	if g.status, g.own, reinit, err = openState(v); err != nil {
		return corrupt("state", err)
	}
	if g.status < StatusActive || g.status > StatusReInit {
		return corrupt("state", fmt.Errorf("status %d", g.status))
	}
	if reinit != nil {
		if g.reinit, err = wire.Unmarshal[wire.ReInit](reinit); err != nil {
			return corrupt("state", err)
		}
	}
	return nil
}

func (rs *restorer) restoreTree(g *Group) error {
	v, err := rs.need(rs.pub, "tree/size")
	if err != nil {
		return err
	}
	leaves, chunk, err := openTreeSize(v)
	if err != nil {
		return corrupt("tree/size", err)
	}
	if chunk == 0 {
		return rs.restoreTiles(g, leaves)
	}
	n, cs := uint64(leaves), uint64(chunk)
	// logTreeChanges keeps the tree in at most maxTreeRecords records (and
	// earlier versions in maxStoredTreeRecords); more would let a corrupt
	// size make this loop run for long.
	width := 2*n - 1
	if n == 0 || cs == 0 || (width+cs-1)/cs > maxStoredTreeRecords {
		return corrupt("tree/size", fmt.Errorf("%d leaves in chunks of %d nodes", n, cs))
	}
	// The nodes slice grows with the nodes the records hold, not with the
	// size the tree/size record claims.
	var nodes wire.RatchetTree
	for k := uint64(0); k*cs < width; k++ {
		name := treeChunkName(uint32(cs), uint32(k))
		v, ok := rs.pub[name]
		if !ok {
			continue
		}
		r := codec.NewReader(v)
		for x := k * cs; x < min((k+1)*cs, width) && !r.Empty(); x++ {
			r.Optional(func(r *codec.Reader) {
				nd := &wire.Node{}
				nd.UnmarshalMLS(r)
				if uint64(len(nodes)) <= x {
					nodes = append(nodes, make(wire.RatchetTree, x+1-uint64(len(nodes)))...)
				}
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
	g.storedCS, g.storedWidth = uint32(cs), t.Width()
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
		sd, err := persist.OpenSecret(rs.key[epochName(e, "sender-data")], valueVersion, g.suite.HashLen())
		if err != nil {
			return corrupt(epochName(e, "sender-data"), err)
		}
		m := &msgEpoch{epoch: e, senderData: sd}
		leaves := g.tree.LeafCount()
		if e != g.ctx.Epoch || g.status == StatusRemoved {
			v, err := rs.need(rs.pub, pastName(e, "context"))
			if err != nil {
				return err
			}
			if m.ctx, err = wire.Unmarshal[wire.GroupContext](v); err != nil {
				return corrupt(pastName(e, "context"), err)
			}
			if m.members, err = rs.restorePastMembers(e); err != nil {
				return err
			}
			leaves = treemath.LeafCount(m.members.leaves)
		}
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
	commitSecret, priv, err := openPendingSecrets(g.suite, v)
	if err != nil {
		return corrupt("pending-commit/secrets", err)
	}
	if err := g.restagePending(ac, commitSecret, priv); err != nil {
		commitSecret.Clear()
		return corrupt("pending-commit", err)
	}
	return nil
}

// openPrivateKey decodes the record of one HPKE private key (hpke/...,
// pending-update/...).
func openPrivateKey(suite *ciphersuite.Suite, v []byte) (*ciphersuite.HPKEPrivateKey, error) {
	kb, err := persist.OpenSecret(v, valueVersion, -1)
	if err != nil {
		return nil, err
	}
	defer kb.Clear()
	return suite.ParseHPKEPrivateKey(kb.Bytes())
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
	} else {
		priv, err := g.privState()
		if err != nil {
			return err
		}
		if sc.priv, err = keepValidKeys(priv, tree, nil); err != nil {
			return err
		}
	}
	init, err := g.secrets.NextInitSecret()
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
