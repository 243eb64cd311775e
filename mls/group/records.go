package group

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
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

// The persisted form of a group (record names, value layouts) is package
// persist's; see the table in mls/persist/records.go.

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
	g.log.own(groupScope, storage.Public, persist.JoinConfigName, g.cfg.marshal())
	g.logState()
	if g.storedCS != 0 {
		w := g.tree.Width()
		cs := persist.TreeChunk(w)
		for k := uint32(0); uint64(k)*uint64(cs) < uint64(w); k++ {
			g.log.own(groupScope, storage.Public, persist.TreeChunkName(cs, k), g.treeChunkValue(cs, k))
		}
		g.log.own(groupScope, storage.Public, persist.TreeSizeName, persist.ChunkSizeValue(uint32(g.tree.LeafCount()), cs))
	} else {
		g.logAllTiles()
	}
	if g.secrets != nil {
		g.log.own(groupScope, storage.KeyMaterial, persist.EpochSecretsName(g.ctx.Epoch), epochRecord(g.secrets))
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
		g.log.own(groupScope, storage.Public, persist.ProposalName(q.ref), persist.QueuedValue(i, q.ac.Bytes()))
	}
	for name, k := range g.updates {
		g.logUpdateKey(name, k)
	}
	if g.pending != nil {
		g.logPending()
	}
	return g.log.take(g.ctx.GroupID).Puts
}

// logSenderData logs the sender_data_secret of epoch e.
func (g *Group) logSenderData(e uint64, s secret.Secret) {
	g.log.own(groupScope, storage.KeyMaterial, persist.SenderDataName(e), persist.ValueEnvelope(persist.ValueVersion, s.Bytes()))
}

// logResumption logs the resumption_psk of epoch e.
func (g *Group) logResumption(e uint64, psk secret.Secret) {
	g.log.own(groupScope, storage.KeyMaterial, persist.ResumptionName(e), persist.ValueEnvelope(persist.ValueVersion, psk.Bytes()))
}

// logUpdateKey logs the leaf private key of the own Update proposal name.
func (g *Group) logUpdateKey(name string, k *ciphersuite.HPKEPrivateKey) {
	kb := k.Bytes()
	g.log.own(groupScope, storage.KeyMaterial, persist.PendingUpdateName(name), persist.ValueEnvelope(persist.ValueVersion, kb.Bytes()))
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
	g.log.own(groupScope, storage.Public, persist.StateName, persist.StateValue(uint8(g.status), uint32(g.own), reinit))
	g.log.own(groupScope, storage.Public, persist.ContextName, g.ctx.Bytes())
	g.log.own(groupScope, storage.Public, persist.InterimName, persist.ValueEnvelope(persist.ValueVersion, g.interim))
	g.log.own(groupScope, storage.Public, persist.ConfirmationTagName, persist.ValueEnvelope(persist.ValueVersion, g.confTag))
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
		g.log.del(groupScope, storage.Public, persist.TreeChunkName(g.storedCS, k))
	}
	w := g.tree.Width()
	cs := persist.TreeChunk(w)
	for k := uint32(0); uint64(k)*uint64(cs) < uint64(w); k++ {
		g.log.own(groupScope, storage.Public, persist.TreeChunkName(cs, k), g.treeChunkValue(cs, k))
	}
	g.log.own(groupScope, storage.Public, persist.TreeSizeName, persist.ChunkSizeValue(uint32(g.tree.LeafCount()), cs))
	g.storedCS, g.storedWidth = cs, w
	g.tree.ResetChanged()
}

// logChunkChanges is logTreeChanges for layout 1: the chunks holding
// nodes changed since the last log.
func (g *Group) logChunkChanges() {
	w := g.tree.Width()
	cs := persist.TreeChunk(w)
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
			g.log.own(groupScope, storage.Public, persist.TreeChunkName(cs, k), g.treeChunkValue(cs, k))
		}
	}
	for k := uint32(0); uint64(k)*uint64(cs) < uint64(g.storedWidth); k++ {
		if uint64(k)*uint64(cs) >= uint64(w) {
			g.log.del(groupScope, storage.Public, persist.TreeChunkName(cs, k))
		}
	}
	g.log.own(groupScope, storage.Public, persist.TreeSizeName, persist.ChunkSizeValue(uint32(g.tree.LeafCount()), cs))
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
		out[persist.HPKEName(uint32(n), h)] = persist.ValueEnvelope(persist.ValueVersion, kb.Bytes())
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
	for k, part := range persist.PendingParts(pc.ac.Bytes()) {
		g.log.put(groupScope, storage.Public, persist.PendingPartName(k), part)
	}
	g.log.own(groupScope, storage.KeyMaterial, persist.PendingSecretsName, pendingSecretsValue(pc.commitSecret, pc.staged.priv))
}

// pendingSecretsValue is the pending-commit/secrets record of the
// commit secret and the committer's new TreeKEM private state.
func pendingSecretsValue(commitSecret secret.Secret, priv *treekem.PrivateState) []byte {
	ps := &persist.PendingSecrets{CommitSecret: commitSecret, Leaf: uint32(priv.Leaf()), LeafKey: priv.LeafKey().Bytes()}
	for _, nk := range priv.Nodes() {
		ps.Nodes = append(ps.Nodes, persist.NodeKey{Node: uint32(nk.Node), Key: nk.Key.Bytes()})
	}
	// The commit secret stays the pending commit's.
	defer func() {
		ps.CommitSecret = secret.Secret{}
		ps.Clear()
	}()
	return persist.PendingSecretsValue(ps)
}

// openPendingSecrets decodes the pending-commit/secrets record
// (logPending) into the commit secret and the TreeKEM private state it
// holds.
func openPendingSecrets(suite *ciphersuite.Suite, v []byte) (secret.Secret, *treekem.PrivateState, error) {
	ps, err := persist.OpenPendingSecrets(v, suite.HashLen())
	if err != nil {
		return secret.Secret{}, nil, err
	}
	commitSecret := ps.CommitSecret
	ps.CommitSecret = secret.Secret{}
	defer ps.Clear()
	fail := func(err error) (secret.Secret, *treekem.PrivateState, error) {
		commitSecret.Clear()
		return secret.Secret{}, nil, err
	}
	leafKey, err := suite.ParseHPKEPrivateKey(ps.LeafKey.Bytes())
	if err != nil {
		return fail(err)
	}
	nodes := make([]treekem.NodeKey, 0, len(ps.Nodes))
	for _, nk := range ps.Nodes {
		k, err := suite.ParseHPKEPrivateKey(nk.Key.Bytes())
		if err != nil {
			return fail(err)
		}
		nodes = append(nodes, treekem.NodeKey{Node: treemath.NodeIndex(nk.Node), Key: k})
	}
	priv, err := treekem.NewPrivateState(suite, treemath.LeafIndex(ps.Leaf), leafKey, nodes)
	if err == nil && !slices.EqualFunc(priv.Nodes(), nodes, func(a, b treekem.NodeKey) bool { return a.Node == b.Node }) {
		// pendingSecretsValue writes them in the state's order.
		err = fmt.Errorf("node keys out of order")
	}
	if err != nil {
		return fail(err)
	}
	return commitSecret, priv, nil
}

// unlogPending deletes the records of pc, the pending commit that was.
func (g *Group) unlogPending(pc *pendingCommit) {
	for k := range persist.PendingParts(pc.ac.Bytes()) {
		g.log.del(groupScope, storage.Public, persist.PendingPartName(k))
	}
	g.log.del(groupScope, storage.KeyMaterial, persist.PendingSecretsName)
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
	v, err := rs.need(rs.pub, persist.JoinConfigName)
	if err != nil {
		return nil, err
	}
	if err := c.unmarshal(v); err != nil {
		return nil, err
	}
	v, err = rs.need(rs.pub, persist.ContextName)
	if err != nil {
		return nil, err
	}
	gc, err := wire.Unmarshal[wire.GroupContext](v)
	if err != nil {
		return nil, corrupt(persist.ContextName, err)
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(gc.CipherSuite))
	if err != nil {
		return nil, corrupt(persist.ContextName, err)
	}
	if signer == nil {
		return nil, fmt.Errorf("%w: nil signing key", ErrInvalidArgument)
	}
	g := newGroup(&c, suite, signer)
	g.log = newChangeLog()
	g.ctx = *gc

	// state
	v, err = rs.need(rs.pub, persist.StateName)
	if err != nil {
		return nil, err
	}
	if err := g.restoreState(v); err != nil {
		return nil, err
	}
	if v, err = rs.need(rs.pub, persist.InterimName); err != nil {
		return nil, err
	}
	if g.interim, err = persist.OpenValue(v, persist.ValueVersion, suite.HashLen()); err != nil {
		return nil, corrupt(persist.InterimName, err)
	}
	if v, err = rs.need(rs.pub, persist.ConfirmationTagName); err != nil {
		return nil, err
	}
	if g.confTag, err = persist.OpenValue(v, persist.ValueVersion, suite.HashLen()); err != nil {
		return nil, corrupt(persist.ConfirmationTagName, err)
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
	if v, ok := rs.key[persist.EpochSecretsName(g.ctx.Epoch)]; ok && g.status != StatusRemoved {
		if g.secrets, err = openEpochRecord(suite, v); err != nil {
			return nil, corrupt("epoch secrets", err)
		}
	}
	if err := rs.restoreMessages(g); err != nil {
		return nil, err
	}
	for name, v := range rs.key {
		if e, ok := strings.CutPrefix(name, persist.ResumptionNamePrefix); ok {
			n, err := strconv.ParseUint(e, 10, 64)
			if err != nil {
				return nil, corrupt(name, err)
			}
			psk, err := persist.OpenSecret(v, persist.ValueVersion, suite.HashLen())
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
		ref, ok := strings.CutPrefix(name, persist.ProposalNamePrefix)
		if !ok {
			continue
		}
		rb, err := hex.DecodeString(ref)
		if err != nil {
			return nil, corrupt(name, err)
		}
		seq, acb, err := persist.OpenQueued(v)
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
		ref, ok := strings.CutPrefix(name, persist.PendingUpdatePrefix)
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
	if v, ok := rs.pub[persist.PendingPartName(0)]; ok {
		for k := 1; ; k++ {
			more, ok := rs.pub[persist.PendingPartName(k)]
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
	var status uint8
	var own uint32
	if status, own, reinit, err = persist.OpenState(v); err != nil {
		return corrupt(persist.StateName, err)
	}
	g.status, g.own = Status(status), treemath.LeafIndex(own)
	if g.status < StatusActive || g.status > StatusReInit {
		return corrupt(persist.StateName, fmt.Errorf("status %d", g.status))
	}
	if reinit != nil {
		if g.reinit, err = wire.Unmarshal[wire.ReInit](reinit); err != nil {
			return corrupt(persist.StateName, err)
		}
	}
	return nil
}

func (rs *restorer) restoreTree(g *Group) error {
	v, err := rs.need(rs.pub, persist.TreeSizeName)
	if err != nil {
		return err
	}
	leaves, chunk, err := persist.OpenTreeSize(v)
	if err != nil {
		return corrupt(persist.TreeSizeName, err)
	}
	if chunk == 0 {
		return rs.restoreTiles(g, leaves)
	}
	n, cs := uint64(leaves), uint64(chunk)
	// logTreeChanges keeps the tree in at most persist.MaxTreeRecords
	// records (and earlier versions in MaxStoredTreeRecords); more would
	// let a corrupt
	// size make this loop run for long.
	width := 2*n - 1
	if n == 0 || cs == 0 || (width+cs-1)/cs > persist.MaxStoredTreeRecords {
		return corrupt(persist.TreeSizeName, fmt.Errorf("%d leaves in chunks of %d nodes", n, cs))
	}
	// The nodes slice grows with the nodes the records hold, not with the
	// size the tree/size record claims.
	var nodes wire.RatchetTree
	for k := uint64(0); k*cs < width; k++ {
		name := persist.TreeChunkName(uint32(cs), uint32(k))
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
		rest, ok := strings.CutPrefix(name, persist.EpochNamePrefix)
		if !ok || !strings.HasSuffix(rest, persist.SenderDataSuffix) {
			continue
		}
		e, err := strconv.ParseUint(strings.TrimSuffix(rest, persist.SenderDataSuffix), 10, 64)
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
		sd, err := persist.OpenSecret(rs.key[persist.SenderDataName(e)], persist.ValueVersion, g.suite.HashLen())
		if err != nil {
			return corrupt(persist.SenderDataName(e), err)
		}
		m := &msgEpoch{epoch: e, senderData: sd}
		leaves := g.tree.LeafCount()
		if e != g.ctx.Epoch || g.status == StatusRemoved {
			v, err := rs.need(rs.pub, persist.PastContextName(e))
			if err != nil {
				return err
			}
			if m.ctx, err = wire.Unmarshal[wire.GroupContext](v); err != nil {
				return corrupt(persist.PastContextName(e), err)
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
		return corrupt(persist.PendingPartName(0), fmt.Errorf("%v", err))
	}
	v, err := rs.need(rs.key, persist.PendingSecretsName)
	if err != nil {
		return err
	}
	commitSecret, priv, err := openPendingSecrets(g.suite, v)
	if err != nil {
		return corrupt(persist.PendingSecretsName, err)
	}
	if err := g.restagePending(ac, commitSecret, priv); err != nil {
		commitSecret.Clear()
		return corrupt(persist.PendingPartName(0), err)
	}
	return nil
}

// openPrivateKey decodes the record of one HPKE private key (hpke/...,
// pending-update/...).
func openPrivateKey(suite *ciphersuite.Suite, v []byte) (*ciphersuite.HPKEPrivateKey, error) {
	kb, err := persist.OpenSecret(v, persist.ValueVersion, -1)
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
