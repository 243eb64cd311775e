package group

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// CommitOptions are the optional inputs of Commit.
type CommitOptions struct {
	// Proposals are included by value, after the queued proposals (which
	// are included by reference).
	Proposals []*wire.Proposal
	// ForcePath includes an UpdatePath even when no proposal requires one
	// (§12.4), for forward secrecy and post-compromise security.
	ForcePath bool
	// SkipQueued commits only Proposals, leaving the queued proposals
	// out.
	SkipQueued bool
	// Identity, if set, changes this member's credential, capabilities or
	// extensions in the new leaf of the path (implies a path).
	Identity *Identity
	// AuthenticatedData is sent in the clear with the commit (§6).
	AuthenticatedData []byte
}

// CommitResult is what Commit produces: the commit message to send to the
// group and, if it adds members, the Welcome to send to them.
type CommitResult struct {
	// Commit is the PublicMessage or PrivateMessage carrying the commit.
	Commit *wire.MLSMessage
	// Welcome is nil when the commit adds no member.
	Welcome *wire.MLSMessage
	// Staged describes the epoch the commit creates; the group moves to
	// it with MergePendingCommit.
	Staged *StagedCommit
}

// pendingCommit is a commit this member sent and has not merged yet.
type pendingCommit struct {
	staged       *StagedCommit
	ac           *wire.AuthenticatedContent
	commitSecret secret.Secret
}

// Commit commits the queued proposals and opts.Proposals (§12.4.1),
// including an UpdatePath when the proposals require one (§12.4) or opts
// asks for it. It returns the commit message, a Welcome for the added
// members, and leaves the group with a pending commit: call
// MergePendingCommit once the delivery service accepted the commit, or
// ClearPendingCommit if it did not. The group stays in the current epoch
// until then.
//
// Queued proposals are filtered as §12.2 recommends: this member's own
// Updates and Remove are left out (a commit may not contain them), a
// Remove is preferred over Updates of the same leaf, the most recent
// Update over older ones, the first Add of a client over later ones, and
// a ReInit is left out when anything else is committed; proposals that
// are no longer valid or whose PSK cannot be found are left out too.
func (g *Group) Commit(opts *CommitOptions) (*CommitResult, error) {
	return g.commit(opts, validateOptions{})
}

func (g *Group) commit(opts *CommitOptions, vo validateOptions) (*CommitResult, error) {
	if opts == nil {
		opts = &CommitOptions{}
	}
	if err := g.checkActive(); err != nil {
		return nil, err
	}
	if g.pending != nil {
		return nil, ErrPendingCommit
	}
	committer := wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: uint32(g.own)}
	entries, err := g.selectProposals(opts, vo)
	if err != nil {
		return nil, err
	}

	// §12.4.1: validate the list and apply it to the tree, under a
	// checkpoint that is rolled back when Commit returns: the tree of the
	// new epoch is replayed when the commit is merged.
	tree := g.tree
	ck := tree.Checkpoint()
	defer tree.Rollback(ck)
	res, err := g.applyProposals(tree, entries, committer, vo)
	if err != nil {
		return nil, err
	}
	sc := g.newStaged(committer, entries, res)
	ok := false
	defer func() {
		if !ok {
			sc.discard()
		}
	}()

	// §12.4.1: the path, if required or asked for.
	var cr *treekem.CreateResult
	var commitSecret secret.Secret
	if pathRequiredFor(res, opts.ForcePath) || opts.Identity != nil {
		var template *wire.LeafNode
		if opts.Identity != nil {
			if template, err = g.leafTemplate(opts.Identity); err != nil {
				return nil, err
			}
		}
		cr, err = treekem.CreateUpdatePath(tree, treekem.CreateParams{
			Sender:       g.own,
			GroupID:      g.ctx.GroupID,
			SigningKey:   g.signer,
			LeafNode:     template,
			Excluded:     res.addedLeaves(),
			GroupContext: sc.provisionalContext,
			Rand:         g.cfg.rand(),
		})
		if err != nil {
			return nil, fmt.Errorf("group: creating the update path: %w", err)
		}
		defer cr.Clear()
		commitSecret = cr.CommitSecret
		sc.priv = cr.State
		sc.path = cr.Path
		if res.exts != nil {
			if err := supportsGroup(&cr.Path.LeafNode.Capabilities, res.exts, requiredCapabilities(res.exts)); err != nil {
				return nil, fmt.Errorf("%w: own leaf: %w", ErrInvalidCommit, err)
			}
		}
	} else {
		priv, err := g.privState()
		if err != nil {
			return nil, err
		}
		if sc.priv, err = keepValidKeys(priv, tree, nil); err != nil {
			return nil, err
		}
	}

	// §12.4.1: sign with the old context, then the new epoch.
	commit := &wire.Commit{Proposals: proposalOrRefs(entries)}
	if cr != nil {
		commit.Path = cr.Path
	}
	content := g.memberContent(wire.ContentTypeCommit, opts.AuthenticatedData)
	content.Commit = commit
	ac, err := g.sign(g.cfg.handshakeWireFormat(), &content)
	if err != nil {
		return nil, err
	}
	init, err := g.secrets.NextInitSecret()
	if err != nil {
		return nil, err
	}
	ks, err := g.finishEpoch(sc, tree, ac, init, commitSecret, vo, true)
	if err != nil {
		return nil, err
	}
	defer ks.clear()

	// §12.4.1: protect with the keys of the old epoch.
	msg, err := g.protectSigned(ac)
	if err != nil {
		return nil, err
	}
	var wm *wire.MLSMessage
	if len(res.added) > 0 {
		if wm, err = g.buildWelcome(sc, tree, ks, cr); err != nil {
			return nil, err
		}
	}
	ok = true
	g.pending = &pendingCommit{staged: sc, ac: ac, commitSecret: secret.Copy(commitSecret.Bytes())}
	g.logPending()
	return &CommitResult{Commit: msg, Welcome: wm, Staged: sc}, nil
}

// selectProposals picks the proposals of a commit (§12.2, §12.4.1).
func (g *Group) selectProposals(opts *CommitOptions, vo validateOptions) ([]proposalEntry, error) {
	var entries []proposalEntry
	if !opts.SkipQueued {
		removed := map[uint32]bool{}
		lastUpdate := map[uint32]int{}
		for i, q := range g.queue.list {
			p, s := q.ac.Content.Proposal, q.ac.Content.Sender
			switch p.ProposalType {
			case wire.ProposalTypeRemove:
				removed[p.Remove.Removed] = true
			case wire.ProposalTypeUpdate:
				lastUpdate[s.LeafIndex] = i
			}
		}
		seenRemove := map[uint32]bool{}
		seenAdd := map[string]bool{}
		seenPSK := map[string]bool{}
		gce := -1
		for i, q := range g.queue.list {
			p, s := q.ac.Content.Proposal, q.ac.Content.Sender
			if g.checkProposal(p, s, g.ctx.Extensions, vo) != nil {
				continue
			}
			switch p.ProposalType {
			case wire.ProposalTypeUpdate:
				if s.SenderType != wire.SenderTypeMember || s.LeafIndex == uint32(g.own) || removed[s.LeafIndex] || lastUpdate[s.LeafIndex] != i {
					continue
				}
			case wire.ProposalTypeRemove:
				l := p.Remove.Removed
				if l == uint32(g.own) || seenRemove[l] {
					continue
				}
				seenRemove[l] = true
			case wire.ProposalTypeAdd:
				k := string(p.Add.KeyPackage.LeafNode.SignatureKey)
				if seenAdd[k] {
					continue
				}
				seenAdd[k] = true
			case wire.ProposalTypePSK:
				id, _ := codec.Marshal(&p.PreSharedKey.PSK)
				if seenPSK[string(id)] {
					continue
				}
				s, err := g.resolvePSK(&p.PreSharedKey.PSK, vo)
				if err != nil {
					continue
				}
				s.Clear()
				seenPSK[string(id)] = true
			case wire.ProposalTypeGroupContextExtensions:
				if gce >= 0 {
					entries = slices.Delete(entries, gce, gce+1)
				}
				gce = len(entries)
			case wire.ProposalTypeExternalInit:
				continue
			}
			entries = append(entries, proposalEntry{p: p, sender: s, ref: q.ref})
		}
		// §12.2: a ReInit only alone; other proposals are preferred.
		reinit := slices.IndexFunc(entries, func(e proposalEntry) bool { return e.p.ProposalType == wire.ProposalTypeReInit })
		if reinit >= 0 {
			if len(entries) > 1 || len(opts.Proposals) > 0 {
				entries = slices.DeleteFunc(entries, func(e proposalEntry) bool { return e.p.ProposalType == wire.ProposalTypeReInit })
			} else {
				entries = entries[:1]
			}
		}
	}
	own := wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: uint32(g.own)}
	for _, p := range opts.Proposals {
		if p == nil {
			return nil, fmt.Errorf("%w: nil proposal", ErrInvalidArgument)
		}
		if p.ProposalType == wire.ProposalTypeUpdate {
			return nil, fmt.Errorf("%w: a committer's own Update is invalid (§12.2); use ForcePath", ErrInvalidArgument)
		}
		entries = append(entries, proposalEntry{p: p, sender: own})
	}
	return entries, nil
}

func proposalOrRefs(entries []proposalEntry) []wire.ProposalOrRef {
	out := make([]wire.ProposalOrRef, len(entries))
	for i, e := range entries {
		if e.ref != nil {
			out[i] = wire.ProposalOrRef{Type: wire.ProposalOrRefTypeReference, Reference: e.ref}
		} else {
			out[i] = wire.ProposalOrRef{Type: wire.ProposalOrRefTypeProposal, Proposal: e.p}
		}
	}
	return out
}

func (r *applyResult) addedLeaves() []treemath.LeafIndex {
	out := make([]treemath.LeafIndex, len(r.added))
	for i, a := range r.added {
		out[i] = a.leaf
	}
	return out
}

func requiredCapabilities(exts []wire.Extension) *wire.RequiredCapabilities {
	if e := wire.FindExtension(exts, wire.ExtensionTypeRequiredCapabilities); e != nil {
		rc, _ := e.RequiredCapabilities()
		return rc
	}
	return nil
}

// leafTemplate is this member's leaf with the credential, capabilities and
// extensions of id, for a path's new leaf (§7.5).
func (g *Group) leafTemplate(id *Identity) (*wire.LeafNode, error) {
	ln := g.tree.Leaf(g.own)
	if ln == nil {
		return nil, fmt.Errorf("%w: own leaf is blank", ErrInactive)
	}
	if id.SigningKey != nil && !bytes.Equal(id.SigningKey.PublicKey(), g.signer.PublicKey()) {
		return nil, fmt.Errorf("%w: a new signing key needs a new member (external commit)", ErrInvalidArgument)
	}
	ln.ClearRaw()
	ln.Credential = id.Credential
	ln.Capabilities = id.capabilities(g.suite.ID())
	ln.Extensions = leafExtensions(id)
	return ln, nil
}

// keepValidKeys returns the member's private state for tree: the HPKE keys
// of nodes that still hold the key's public half (proposals blank nodes,
// §12.1.2, §12.1.3), with leafKey replacing the leaf key if set (an Update
// of this member, §12.1.2).
func keepValidKeys(ps *treekem.PrivateState, tree *ratchettree.Tree, leafKey *ciphersuite.HPKEPrivateKey) (*treekem.PrivateState, error) {
	var nodes []treekem.NodeKey
	for _, nk := range ps.Nodes() {
		if pub := tree.EncryptionKey(nk.Node); pub != nil && bytes.Equal(pub, nk.Key.PublicKey()) {
			nodes = append(nodes, nk)
		}
	}
	if leafKey == nil {
		leafKey = ps.LeafKey()
	}
	out, err := treekem.NewPrivateState(ps.Suite(), ps.Leaf(), leafKey, nodes)
	if err != nil {
		return nil, fmt.Errorf("group: internal error: %w", err)
	}
	return out, nil
}

// epochKeys are the stages of the key schedule the committer needs for the
// Welcome (§12.4.3.1).
type epochKeys struct {
	joiner *keyschedule.JoinerSecret
	member *keyschedule.MemberSecret
}

func (k *epochKeys) clear() {
	if k == nil {
		return
	}
	if k.joiner != nil {
		k.joiner.Clear()
	}
	if k.member != nil {
		k.member.Clear()
	}
}

// finishEpoch runs the end of §12.4.1 and §12.4.2 once the tree of the new
// epoch is final: the confirmed transcript hash (§8.2), the new
// GroupContext, the key schedule with the PSKs (§8, §8.4), and the
// confirmation tag, computed into ac (create) or verified against it; then
// the interim transcript hash. init is consumed.
func (g *Group) finishEpoch(sc *StagedCommit, tree *ratchettree.Tree, ac *wire.AuthenticatedContent, init *keyschedule.InitSecret, commitSecret secret.Secret, vo validateOptions, create bool) (*epochKeys, error) {
	defer init.Clear()
	cth, err := keyschedule.ConfirmedTranscriptHash(g.suite, g.interim, ac.ConfirmedTranscriptHashInput().Bytes())
	if err != nil {
		return nil, err
	}
	sc.ctx = wire.GroupContext{
		Version:                 g.ctx.Version,
		CipherSuite:             g.ctx.CipherSuite,
		GroupID:                 slices.Clone(g.ctx.GroupID),
		Epoch:                   g.ctx.Epoch + 1,
		TreeHash:                tree.TreeHash(),
		ConfirmedTranscriptHash: cth,
		Extensions:              cloneExtensions(sc.res.exts),
	}
	ctxBytes := sc.ctx.Bytes()
	psk, err := g.pskSecret(sc.res.psks, vo)
	if err != nil {
		return nil, err
	}
	defer psk.Clear()
	ks := &epochKeys{}
	if ks.joiner, err = init.Joiner(commitSecret, ctxBytes); err != nil {
		return nil, err
	}
	if ks.member, err = ks.joiner.WithPSK(psk); err != nil {
		ks.clear()
		return nil, err
	}
	epoch, err := ks.member.Epoch(ctxBytes)
	if err != nil {
		ks.clear()
		return nil, err
	}
	if create {
		if ac.Auth.ConfirmationTag, err = epoch.ConfirmationTag(cth); err != nil {
			epoch.Clear()
			ks.clear()
			return nil, err
		}
	} else if !epoch.VerifyConfirmationTag(cth, ac.Auth.ConfirmationTag) {
		epoch.Clear()
		ks.clear()
		return nil, ErrBadConfirmationTag
	}
	sc.confTag = slices.Clone(ac.Auth.ConfirmationTag)
	if sc.interim, err = keyschedule.InterimTranscriptHash(g.suite, cth, sc.confTag); err != nil {
		epoch.Clear()
		ks.clear()
		return nil, err
	}
	sc.secrets, sc.senderData, sc.resumption, sc.encryption = takeEpoch(epoch)
	if !create {
		ks.clear()
		return nil, nil
	}
	return ks, nil
}

// MergePendingCommit moves the group to the epoch of its pending commit
// (§12.4.1), once the delivery service has accepted the commit.
func (g *Group) MergePendingCommit() error {
	if g.pending == nil {
		return ErrNoPendingCommit
	}
	pc := g.pending
	g.pending = nil
	g.unlogPending(pc)
	pc.commitSecret.Clear()
	return g.advance(pc.staged)
}

// ClearPendingCommit drops the pending commit and the secrets of the epoch
// it would have created; the group stays in the current epoch.
func (g *Group) ClearPendingCommit() error {
	if g.pending == nil {
		return ErrNoPendingCommit
	}
	pc := g.pending
	pc.staged.discard()
	pc.commitSecret.Clear()
	g.pending = nil
	g.unlogPending(pc)
	return nil
}

// HasPendingCommit reports whether a commit of this member awaits merging.
func (g *Group) HasPendingCommit() bool { return g.pending != nil }
