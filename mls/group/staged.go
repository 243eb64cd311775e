package group

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/storage"
	"slices"

	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// StagedCommit is a validated commit and the epoch it creates (§12.4.2),
// computed on copies of the group's state: inspect it, then merge it with
// Group.MergeStagedCommit (or MergePendingCommit for the member's own), or
// drop it with Discard. Until then the group is unchanged.
type StagedCommit struct {
	g         *Group
	baseEpoch uint64
	baseTag   []byte
	sender    wire.Sender
	entries   []proposalEntry
	res       *applyResult
	newMember treemath.LeafIndex // the joiner's leaf in an external commit
	path      *wire.UpdatePath
	leaf      treemath.LeafIndex // the committer's leaf in the new tree

	// The new epoch.
	ctx        wire.GroupContext
	interim    []byte
	confTag    []byte
	priv       *treekem.PrivateState
	secrets    *keyschedule.Epoch
	senderData secret.Secret
	resumption secret.Secret
	encryption secret.Secret
	done       bool
}

func (g *Group) newStaged(sender wire.Sender, entries []proposalEntry, res *applyResult) *StagedCommit {
	return &StagedCommit{
		g: g, baseEpoch: g.ctx.Epoch, baseTag: slices.Clone(g.confTag),
		sender: sender, entries: entries, res: res, leaf: treemath.LeafIndex(sender.LeafIndex),
	}
}

// provisionalContext is the provisional GroupContext of §12.4.1 and
// §12.4.2: the new epoch, tree hash and extensions with the old confirmed
// transcript hash.
func (sc *StagedCommit) provisionalContext(treeHash []byte) ([]byte, error) {
	old := &sc.g.ctx
	gc := wire.GroupContext{
		Version:                 old.Version,
		CipherSuite:             old.CipherSuite,
		GroupID:                 old.GroupID,
		Epoch:                   old.Epoch + 1,
		TreeHash:                treeHash,
		ConfirmedTranscriptHash: old.ConfirmedTranscriptHash,
		Extensions:              sc.res.exts,
	}
	return gc.Bytes(), nil
}

// Discard drops the staged commit and deletes the secrets of the epoch it
// would have created. Merging it afterwards fails.
func (sc *StagedCommit) Discard() {
	if sc.g != nil && sc.g.pending != nil && sc.g.pending.staged == sc {
		_ = sc.g.ClearPendingCommit()
		return
	}
	sc.discard()
}

func (sc *StagedCommit) discard() {
	if sc == nil || sc.done {
		return
	}
	sc.done = true
	sc.secrets.Clear()
	sc.senderData.Clear()
	sc.resumption.Clear()
	sc.encryption.Clear()
	if sc.priv != nil && sc.priv != sc.g.priv {
		sc.priv.Clear()
	}
}

// Epoch returns the epoch the commit creates.
func (sc *StagedCommit) Epoch() uint64 { return sc.baseEpoch + 1 }

// Sender returns the committer: a member, or a new member for an external
// commit.
func (sc *StagedCommit) Sender() wire.Sender { return sc.sender }

// IsExternal reports whether this is an external commit (§12.4.3.2);
// NewMemberLeaf then returns the joiner's leaf.
func (sc *StagedCommit) IsExternal() bool {
	return sc.sender.SenderType == wire.SenderTypeNewMemberCommit
}

// NewMemberLeaf returns the leaf an external commit's joiner took.
func (sc *StagedCommit) NewMemberLeaf() treemath.LeafIndex { return sc.newMember }

// Proposals returns the committed proposals in commit order, with their
// senders and, for proposals included by reference, their ProposalRefs.
func (sc *StagedCommit) Proposals() []QueuedProposal {
	out := make([]QueuedProposal, len(sc.entries))
	for i, e := range sc.entries {
		out[i] = QueuedProposal{Ref: slices.Clone(e.ref), Proposal: e.p, Sender: e.sender}
	}
	return out
}

// AddedMember is a member a commit adds.
type AddedMember struct {
	Index      treemath.LeafIndex
	KeyPackage *wire.KeyPackage
}

// Added lists the members the commit adds.
func (sc *StagedCommit) Added() []AddedMember {
	var out []AddedMember
	for _, a := range sc.res.added {
		out = append(out, AddedMember{Index: a.leaf, KeyPackage: a.kp})
	}
	return out
}

// Removed lists the leaves the commit removes.
func (sc *StagedCommit) Removed() []treemath.LeafIndex { return slices.Clone(sc.res.removed) }

// Updated lists the leaves the commit's Update proposals replace.
func (sc *StagedCommit) Updated() []treemath.LeafIndex { return slices.Clone(sc.res.updated) }

// RemovesSelf reports whether the commit removes this member: merging it
// ends the member's participation (StatusRemoved).
func (sc *StagedCommit) RemovesSelf() bool { return sc.res.removedSelf }

// ReInit returns the committed ReInit proposal, or nil. Merging it ends
// the group (StatusReInit, §11.2).
func (sc *StagedCommit) ReInit() *wire.ReInit { return sc.res.reinit }

// PSKs lists the PSKs the commit injects, in order (§8.4).
func (sc *StagedCommit) PSKs() []wire.PreSharedKeyID { return slices.Clone(sc.res.psks) }

// GroupContext returns the GroupContext of the new epoch; for a commit
// that removes this member, which cannot compute it, the old one.
func (sc *StagedCommit) GroupContext() *wire.GroupContext {
	if sc.res.removedSelf {
		return sc.g.GroupContext()
	}
	c := cloneContext(&sc.ctx)
	return &c
}

// MergeStagedCommit moves the group to the epoch of a staged commit
// returned by Process. It fails with ErrStaleCommit if the group has moved
// on since the commit was staged. A pending commit of this member is
// dropped: another commit won.
func (g *Group) MergeStagedCommit(sc *StagedCommit) error {
	if sc == nil {
		return ErrInvalidArgument
	}
	if g.pending != nil && g.pending.staged == sc {
		return g.MergePendingCommit()
	}
	return g.advance(sc)
}

// advance makes the staged epoch the current one and deletes what the old
// epoch's end kills (§9.2): its epoch secrets, its HPKE keys that the new
// tree no longer holds, its queued proposals and pending Update keys, and
// its message secrets unless MaxPastEpochs retains them.
func (g *Group) advance(sc *StagedCommit) error {
	if sc.g != g || sc.done || g.ctx.Epoch != sc.baseEpoch || !bytes.Equal(g.confTag, sc.baseTag) {
		return ErrStaleCommit
	}
	// The tree of the new epoch: the staged changes replayed on the
	// group's tree. What they changed of the members is kept, for late
	// messages of the old epoch.
	members, err := g.replay(sc)
	if err != nil {
		return err
	}
	sc.done = true
	if pc := g.pending; pc != nil {
		pc.staged.discard()
		pc.commitSecret.Clear()
		g.pending = nil
		g.unlogPending(pc)
	}

	// Queued proposals and own Update keys die with the epoch.
	g.dropQueue()

	// Message secrets of the old epoch: retained for late messages, or
	// deleted (§15.3).
	g.retireCurrent(members)

	// Epoch secrets of the old epoch (§9.2).
	if g.secrets != nil {
		g.secrets.Clear()
		g.secrets = nil
		g.log.del(groupScope, storage.KeyMaterial, persist.EpochSecretsName(sc.baseEpoch))
	}

	// Public state of the new epoch.
	g.logTreeChanges()

	if sc.res.removedSelf {
		// §12.4.2: a commit that removes us ends our participation.
		g.setPriv(nil)
		g.status = StatusRemoved
		g.logState()
		return nil
	}
	g.ctx = sc.ctx
	g.interim = sc.interim
	g.confTag = sc.confTag
	g.own = sc.priv.Leaf()
	g.setPriv(sc.priv)
	g.secrets = sc.secrets
	g.log.own(groupScope, storage.KeyMaterial, persist.EpochSecretsName(g.ctx.Epoch), epochRecord(g.secrets))
	if err := g.startMessages(sc.senderData, sc.encryption); err != nil {
		return err
	}
	g.addResumption(g.ctx.Epoch, sc.resumption)
	if sc.res.reinit != nil {
		g.status = StatusReInit
		g.reinit = sc.res.reinit
	}
	g.logState()
	return nil
}

// replay applies a staged commit's changes to the group's tree (§12.3,
// §7.5): staging changed the tree under a checkpoint and rolled it back,
// so that the group was unchanged until the merge. Replaying costs
// O(log N) per proposal; it fails only on an internal error, and then
// changes nothing. It returns the members of the tree's old epoch, as a
// delta against the new one.
func (g *Group) replay(sc *StagedCommit) (*pastMembers, error) {
	leaves := int(g.tree.LeafCount())
	ck := g.tree.Checkpoint()
	scratch := *sc.res
	err := g.applyToTree(g.tree, sc.entries, sc.sender, &scratch)
	if err == nil && sc.IsExternal() {
		_, err = reserveLeaf(g.tree, &sc.path.LeafNode)
	}
	if err == nil && sc.path != nil {
		err = publicMerge(g.tree, sc.leaf, sc.path)
	}
	if err == nil && !sc.res.removedSelf && !bytes.Equal(g.tree.TreeHash(), sc.ctx.TreeHash) {
		err = errors.New("tree hash differs")
	}
	if err != nil {
		g.tree.Rollback(ck)
		return nil, fmt.Errorf("group: internal error: replaying a staged commit: %w", err)
	}
	members := g.retiredMembers(ck, leaves)
	g.tree.Release(ck)
	return members, nil
}

// startMessages installs the message secrets of the current epoch: its
// sender_data_secret and a secret tree from its encryption_secret (§9),
// which takes ownership of it.
func (g *Group) startMessages(senderData, encryption secret.Secret) error {
	t, err := newMsgTree(g.suite, g.ctx.Epoch, encryption, g.tree.LeafCount(), g.cfg.tolerance(), g.cfg.maxForward(), g.log)
	if err != nil {
		return err
	}
	g.cur = &msgEpoch{epoch: g.ctx.Epoch, senderData: senderData, tree: t}
	g.logSenderData(g.ctx.Epoch, senderData)
	return nil
}

// retireCurrent moves the current epoch's message secrets and members to
// the past epochs, or deletes them, and deletes past epochs beyond
// MaxPastEpochs.
func (g *Group) retireCurrent(members *pastMembers) {
	m := g.cur
	g.cur = nil
	if m != nil {
		if g.cfg.MaxPastEpochs > 0 {
			ctx := cloneContext(&g.ctx)
			m.ctx = &ctx
			m.members = members
			g.past = append(g.past, m)
			g.logPast(m)
		} else {
			g.dropMessages(m)
		}
	}
	for len(g.past) > max(g.cfg.MaxPastEpochs, 0) {
		g.dropMessages(g.past[0])
		g.unlogPast(g.past[0])
		g.past = slices.Delete(g.past, 0, 1)
	}
}

// dropMessages deletes the message secrets of one epoch: every record
// under its prefix at once, however many senders left ratchets and kept
// keys in it.
func (g *Group) dropMessages(m *msgEpoch) {
	g.log.delPrefix(groupScope, storage.KeyMaterial, persist.EpochPrefix(m.epoch))
	if m.tree != nil {
		m.tree.log = nil // the prefix covers every record of the tree
		m.tree.clear()
	}
	m.senderData.Clear()
}

// addResumption keeps the resumption PSK of a new epoch and deletes those
// beyond NumberOfResumptionPSKs past epochs (§8.6).
func (g *Group) addResumption(epoch uint64, psk secret.Secret) {
	g.resumption = append(g.resumption, resumptionPSK{epoch: epoch, psk: psk})
	g.logResumption(epoch, psk)
	for len(g.resumption) > max(g.cfg.NumberOfResumptionPSKs, 0)+1 {
		g.resumption[0].psk.Clear()
		g.log.del(groupScope, storage.KeyMaterial, persist.ResumptionName(g.resumption[0].epoch))
		g.resumption = slices.Delete(g.resumption, 0, 1)
	}
}
