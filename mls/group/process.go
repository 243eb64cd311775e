package group

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// ReceivedMessage is the outcome of Process: an authenticated application
// message, a proposal (now queued), or a staged commit.
type ReceivedMessage struct {
	// Sender is who sent the message.
	Sender wire.Sender
	// Epoch is the epoch the message was sent in (an earlier one for a
	// late application message).
	Epoch uint64
	// AuthenticatedData is the message's unencrypted authenticated data.
	AuthenticatedData []byte
	// ApplicationData is set for an application message.
	ApplicationData []byte
	// Proposal is set for a proposal; it has been validated and queued.
	Proposal *QueuedProposal
	// Commit is set for a commit: inspect it, then merge it with
	// MergeStagedCommit.
	Commit *StagedCommit
}

// Process authenticates and processes a PublicMessage or PrivateMessage of
// the group (§6, §12): an application message of the current epoch or of
// a retained past one (§15.3), a proposal of the current epoch, which is
// validated and queued (§12.1), or a commit of the current epoch, which is
// validated and staged (§12.4.2). A rejected message leaves the group
// unchanged and returns an error matching one of the package's sentinels.
// A processed application message consumes its key (§9.2): it does not
// decrypt twice.
func (g *Group) Process(m *wire.MLSMessage) (*ReceivedMessage, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil message", ErrInvalidArgument)
	}
	switch m.WireFormat {
	case wire.WireFormatPublicMessage:
		if m.PublicMessage == nil {
			return nil, fmt.Errorf("%w: empty message", ErrMalformed)
		}
		return g.processPublic(m.PublicMessage)
	case wire.WireFormatPrivateMessage:
		if m.PrivateMessage == nil {
			return nil, fmt.Errorf("%w: empty message", ErrMalformed)
		}
		return g.processPrivate(m.PrivateMessage)
	}
	return nil, fmt.Errorf("%w: wire format %v is not a group message", ErrMalformed, m.WireFormat)
}

// ProcessBytes decodes an MLSMessage and processes it.
func (g *Group) ProcessBytes(b []byte) (*ReceivedMessage, error) {
	m, err := wire.UnmarshalMLSMessage(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return g.Process(m)
}

func (g *Group) processPublic(pm *wire.PublicMessage) (*ReceivedMessage, error) {
	if !bytes.Equal(pm.Content.GroupID, g.ctx.GroupID) {
		return nil, ErrWrongGroup
	}
	if pm.Content.Epoch != g.ctx.Epoch {
		return nil, fmt.Errorf("%w: epoch %d, group is in %d", ErrWrongEpoch, pm.Content.Epoch, g.ctx.Epoch)
	}
	if err := g.checkActive(); err != nil {
		return nil, err
	}
	fe := &framing.Epoch{
		Suite:        g.suite,
		Context:      &g.ctx,
		Secrets:      &senderDataSecrets{suite: g.suite, senderData: g.cur.senderData, current: g.secrets},
		IsMember:     func(l treemath.LeafIndex) bool { return g.isMember(uint32(l)) },
		SignatureKey: g.senderSignatureKey,
	}
	ac, err := fe.UnprotectPublic(pm)
	if err != nil {
		return nil, mapErr(err)
	}
	return g.dispatch(ac, nil)
}

func (g *Group) processPrivate(pm *wire.PrivateMessage) (*ReceivedMessage, error) {
	if !bytes.Equal(pm.GroupID, g.ctx.GroupID) {
		return nil, ErrWrongGroup
	}
	if pm.Epoch != g.ctx.Epoch || g.cur == nil {
		// §15.3: late application messages of retained past epochs.
		if pm.ContentType != wire.ContentTypeApplication {
			return nil, fmt.Errorf("%w: %v of epoch %d, group is in %d", ErrWrongEpoch, pm.ContentType, pm.Epoch, g.ctx.Epoch)
		}
		for i, m := range g.past {
			if m.epoch != pm.Epoch {
				continue
			}
			ac, tk, err := unprotectPrivate(g.pastPrivateEpoch(i), pm)
			if err != nil {
				return nil, err
			}
			if err := tk.commit(); err != nil {
				return nil, err
			}
			return applicationMessage(ac), nil
		}
		return nil, fmt.Errorf("%w: epoch %d not retained", ErrWrongEpoch, pm.Epoch)
	}
	if pm.ContentType != wire.ContentTypeApplication {
		if err := g.checkActive(); err != nil {
			return nil, err
		}
	}
	ac, tk, err := unprotectPrivate(g.currentPrivateEpoch(), pm)
	if err != nil {
		return nil, err
	}
	return g.dispatch(ac, tk)
}

func applicationMessage(ac *wire.AuthenticatedContent) *ReceivedMessage {
	return &ReceivedMessage{
		Sender:            ac.Content.Sender,
		Epoch:             ac.Content.Epoch,
		AuthenticatedData: ac.Content.AuthenticatedData,
		ApplicationData:   ac.Content.ApplicationData,
	}
}

// dispatch processes authenticated content of the current epoch. tk, the
// content key of a PrivateMessage, is taken only if the message is
// accepted.
func (g *Group) dispatch(ac *wire.AuthenticatedContent, tk *msgTake) (*ReceivedMessage, error) {
	c := &ac.Content
	switch c.ContentType {
	case wire.ContentTypeApplication:
		if err := tk.commit(); err != nil {
			return nil, err
		}
		return applicationMessage(ac), nil
	case wire.ContentTypeProposal:
		if err := g.validateProposal(c.Proposal, c.Sender, validateOptions{}); err != nil {
			tk.abort()
			return nil, err
		}
		ref := g.suite.MakeProposalRef(ac.Bytes())
		if c.Proposal.ProposalType == wire.ProposalTypeUpdate && c.Sender.SenderType == wire.SenderTypeMember &&
			c.Sender.LeafIndex == uint32(g.own) && g.queue.find(ref) == nil {
			// An Update of our leaf that we did not send: we would not
			// have its private key.
			tk.abort()
			return nil, fmt.Errorf("%w: Update of own leaf not sent by this member", ErrInvalidProposal)
		}
		if err := tk.commit(); err != nil {
			return nil, err
		}
		g.enqueue(&queuedProposal{ref: ref, ac: ac})
		return &ReceivedMessage{
			Sender: c.Sender, Epoch: c.Epoch, AuthenticatedData: c.AuthenticatedData,
			Proposal: &QueuedProposal{Ref: slices.Clone(ref), Proposal: c.Proposal, Sender: c.Sender},
		}, nil
	case wire.ContentTypeCommit:
		sc, err := g.stageReceived(ac)
		if err != nil {
			tk.abort()
			return nil, err
		}
		if err := tk.commit(); err != nil {
			sc.discard()
			return nil, err
		}
		return &ReceivedMessage{Sender: c.Sender, Epoch: c.Epoch, AuthenticatedData: c.AuthenticatedData, Commit: sc}, nil
	}
	tk.abort()
	return nil, fmt.Errorf("%w: content type %v", ErrMalformed, c.ContentType)
}

// senderSignatureKey finds the key that must have signed ac (§6.1): a
// member's from its leaf, an external sender's from external_senders
// (§12.1.8.1), a new member's from its KeyPackage or its path's leaf.
func (g *Group) senderSignatureKey(ac *wire.AuthenticatedContent) ([]byte, error) {
	c := &ac.Content
	switch c.Sender.SenderType {
	case wire.SenderTypeMember:
		if k := g.signatureKey(c.Sender.LeafIndex); k != nil {
			return k, nil
		}
		return nil, ErrSenderNotMember
	case wire.SenderTypeExternal:
		ext := wire.FindExtension(g.ctx.Extensions, wire.ExtensionTypeExternalSenders)
		if ext == nil {
			return nil, fmt.Errorf("%w: the group has no external senders", ErrUnauthorizedSender)
		}
		senders, err := ext.ExternalSenders()
		if err != nil || uint64(c.Sender.SenderIndex) >= uint64(len(senders)) {
			return nil, fmt.Errorf("%w: no external sender %d", ErrUnauthorizedSender, c.Sender.SenderIndex)
		}
		return senders[c.Sender.SenderIndex].SignatureKey, nil
	case wire.SenderTypeNewMemberProposal:
		if c.Proposal == nil || c.Proposal.ProposalType != wire.ProposalTypeAdd || c.Proposal.Add == nil {
			return nil, fmt.Errorf("%w: new member proposal that is not an Add", ErrUnauthorizedSender)
		}
		return c.Proposal.Add.KeyPackage.LeafNode.SignatureKey, nil
	case wire.SenderTypeNewMemberCommit:
		if c.Commit == nil || c.Commit.Path == nil {
			return nil, fmt.Errorf("%w: external commit without a path", ErrInvalidCommit)
		}
		return c.Commit.Path.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %v", ErrUnauthorizedSender, c.Sender.SenderType)
}

// commitProcessor holds the state of one received commit while it is
// processed (§12.4.2). Everything it builds is a copy; the group changes
// only when the staged commit is merged.
type commitProcessor struct {
	g        *Group
	ac       *wire.AuthenticatedContent
	commit   *wire.Commit
	sender   wire.Sender
	external bool
	leaf     treemath.LeafIndex // the committer's leaf in the new tree
	entries  []proposalEntry
	tree     *ratchettree.Tree
	res      *applyResult
	sc       *StagedCommit
	priv     *treekem.PrivateState
	secret   secret.Secret
	init     *keyschedule.InitSecret
	ck       *ratchettree.Checkpoint
}

// stageReceived processes a commit of another member (§12.4.2) or an
// external commit (§12.4.3.2), one step per paragraph of the RFC.
func (g *Group) stageReceived(ac *wire.AuthenticatedContent) (*StagedCommit, error) {
	cp := &commitProcessor{g: g, ac: ac, commit: ac.Content.Commit, sender: ac.Content.Sender}
	for _, step := range []func() error{
		cp.checkSender,      // §12.4.2, §12.4.3.2: who may commit
		cp.resolveProposals, // §12.4.2: proposals by reference from the queue
		cp.applyProposals,   // §12.2 validation, §12.3 on a copy of the tree
		cp.checkPath,        // §12.4: the path is present when required
		cp.processPath,      // §12.4.2: leaf validation, key uniqueness, TreeKEM
		cp.deriveInitSecret, // §8, §8.3: previous epoch's or external init secret
		cp.deriveEpoch,      // §8.2, §8, §8.4: transcript, key schedule, confirmation tag
	} {
		if err := step(); err != nil {
			cp.fail()
			return nil, err
		}
	}
	cp.secret.Clear()
	cp.rollback()
	return cp.sc, nil
}

// rollback restores the group's tree: the staged commit's changes are
// replayed when it is merged.
func (cp *commitProcessor) rollback() {
	if cp.ck != nil {
		cp.tree.Rollback(*cp.ck)
		cp.ck = nil
	}
}

func (cp *commitProcessor) fail() {
	cp.rollback()
	cp.secret.Clear()
	if cp.init != nil {
		cp.init.Clear()
	}
	if cp.sc != nil {
		cp.sc.discard()
	}
}

// checkSender: a commit comes from a member (not this one: its own commits
// are merged, not processed) or, externally, from a new member (§12.4.3.2).
func (cp *commitProcessor) checkSender() error {
	g := cp.g
	if cp.commit == nil {
		return fmt.Errorf("%w: empty commit", ErrMalformed)
	}
	switch cp.sender.SenderType {
	case wire.SenderTypeMember:
		if cp.sender.LeafIndex == uint32(g.own) {
			return ErrOwnCommit
		}
		cp.leaf = treemath.LeafIndex(cp.sender.LeafIndex)
	case wire.SenderTypeNewMemberCommit:
		cp.external = true
		if cp.commit.Path == nil {
			return fmt.Errorf("%w: external commit without a path", ErrInvalidCommit)
		}
	default:
		return fmt.Errorf("%w: commit from sender type %v", ErrUnauthorizedSender, cp.sender.SenderType)
	}
	return nil
}

// resolveProposals looks up proposals included by reference; a reference
// to a proposal not received in this epoch rejects the commit. An external
// commit carries every proposal by value (§12.4.3.2).
func (cp *commitProcessor) resolveProposals() error {
	for i, por := range cp.commit.Proposals {
		switch por.Type {
		case wire.ProposalOrRefTypeProposal:
			if por.Proposal == nil {
				return fmt.Errorf("%w: proposal %d empty", ErrMalformed, i)
			}
			cp.entries = append(cp.entries, proposalEntry{p: por.Proposal, sender: cp.sender})
		case wire.ProposalOrRefTypeReference:
			if cp.external {
				return fmt.Errorf("%w: external commit with a proposal by reference", ErrInvalidCommit)
			}
			q := cp.g.queue.find(por.Reference)
			if q == nil {
				return fmt.Errorf("%w: proposal %d", ErrUnknownProposal, i)
			}
			cp.entries = append(cp.entries, proposalEntry{p: q.ac.Content.Proposal, sender: q.ac.Content.Sender, ref: q.ref})
		default:
			return fmt.Errorf("%w: proposal %d of type %v", ErrMalformed, i, por.Type)
		}
	}
	return nil
}

// applyProposals validates the list (§12.2) and applies it to the tree
// (§12.3) under a checkpoint, rolled back once the commit is staged or
// rejected.
func (cp *commitProcessor) applyProposals() error {
	g := cp.g
	cp.tree = g.tree
	ck := cp.tree.Checkpoint()
	cp.ck = &ck
	res, err := g.applyProposals(cp.tree, cp.entries, cp.sender, validateOptions{})
	if err != nil {
		return err
	}
	cp.res = res
	cp.sc = g.newStaged(cp.sender, cp.entries, res)
	cp.sc.path = cp.commit.Path
	// §12.4.2: every PSK must be available.
	for i := range res.psks {
		s, err := g.resolvePSK(&res.psks[i], validateOptions{})
		if err != nil {
			return err
		}
		s.Clear()
	}
	return nil
}

// checkPath: the path is required for an empty commit and for the
// path-required proposal types (§12.4).
func (cp *commitProcessor) checkPath() error {
	if cp.res.pathRequired && cp.commit.Path == nil {
		return fmt.Errorf("%w: path required", ErrInvalidCommit)
	}
	return nil
}

// processPath validates the UpdatePath and applies it (§12.4.2): the new
// leaf (§7.3, source commit, a new encryption key), keys unique in the new
// tree, then TreeKEM (§7.5), which yields the commit secret.
func (cp *commitProcessor) processPath() error {
	g := cp.g
	res := cp.res
	own, err := g.privState()
	if err != nil {
		return err
	}
	var ownLeafKey = own.LeafKey()
	if res.ownUpdateRef != nil {
		k := g.updates[refName(res.ownUpdateRef)]
		if k == nil {
			return fmt.Errorf("%w: own Update committed without its private key", ErrInvalidCommit)
		}
		ownLeafKey = k
	}
	if !res.removedSelf {
		priv, err := keepValidKeys(own, cp.tree, ownLeafKey)
		if err != nil {
			return err
		}
		cp.priv = priv
		cp.sc.priv = priv
	}
	path := cp.commit.Path
	if path == nil {
		return nil
	}
	if cp.external {
		// §12.4.2: the joiner takes the leftmost blank leaf.
		l, err := reserveLeaf(cp.tree, &path.LeafNode)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		cp.leaf = l
		cp.sc.newMember = l
		cp.sc.leaf = l
		for _, rl := range res.removed {
			if !sameClient(res.removedLeaves[rl], &path.LeafNode) {
				return fmt.Errorf("%w: external commit removes leaf %d of another client", ErrInvalidCommit, rl)
			}
		}
	}
	ln := &path.LeafNode
	err = ratchettree.ValidateLeafNode(g.suite, ln, cp.leaf, &ratchettree.ValidationOptions{
		GroupID:                g.ctx.GroupID,
		GroupContextExtensions: res.exts,
		ValidateCredential:     g.cfg.ValidateCredential,
		Source:                 wire.LeafNodeSourceCommit,
	})
	if err != nil {
		return fmt.Errorf("%w: path leaf: %w", ErrInvalidCommit, mapErr(err))
	}
	if err := cp.tree.CheckNewLeaf(cp.leaf, ln); err != nil {
		return fmt.Errorf("%w: path leaf: %w", ErrInvalidCommit, err)
	}
	seen := map[string]bool{}
	for i := range path.Nodes {
		k := path.Nodes[i].EncryptionKey
		if _, ok := cp.tree.FindEncryptionKey(k); ok || seen[string(k)] || bytes.Equal(k, ln.EncryptionKey) {
			return fmt.Errorf("%w: path key %d already in the tree", ErrInvalidCommit, i)
		}
		seen[string(k)] = true
	}
	if res.removedSelf {
		// We cannot decrypt the path: merge its public part only.
		return publicMerge(cp.tree, cp.leaf, path)
	}
	pr, err := treekem.ProcessUpdatePath(cp.tree, cp.priv, treekem.ProcessParams{
		Sender:       cp.leaf,
		GroupID:      g.ctx.GroupID,
		Path:         path,
		Excluded:     res.addedLeaves(),
		GroupContext: cp.sc.provisionalContext,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCommit, mapErr(err))
	}
	pr.PathSecret.Clear()
	cp.secret = pr.CommitSecret
	cp.sc.priv = pr.State
	return nil
}

// reserveLeaf gives an external committer the leftmost blank leaf, adding
// one to the right if there is none (§12.4.2), and leaves it blank for the
// path's leaf.
func reserveLeaf(tree *ratchettree.Tree, ln *wire.LeafNode) (treemath.LeafIndex, error) {
	l, err := tree.AddLeaf(ln)
	if err != nil {
		return 0, err
	}
	if err := tree.SetLeaf(l, nil); err != nil {
		return 0, err
	}
	return l, nil
}

// publicMerge merges the public part of an UpdatePath (§7.5, §7.9): the
// path's keys and parent hashes, and its leaf, whose parent_hash must match.
func publicMerge(tree *ratchettree.Tree, sender treemath.LeafIndex, path *wire.UpdatePath) error {
	keys := make([][]byte, len(path.Nodes))
	for i := range path.Nodes {
		keys[i] = path.Nodes[i].EncryptionKey
	}
	ph, err := tree.MergePath(sender, keys)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	if !bytes.Equal(ph, path.LeafNode.ParentHash) {
		return fmt.Errorf("%w: parent hash of the path leaf", ErrInvalidCommit)
	}
	ln := path.LeafNode
	if err := tree.SetLeaf(sender, &ln); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	return nil
}

// deriveInitSecret: the init secret of the previous epoch, or for an
// external commit the one from the ExternalInit's KEM output (§8.3).
func (cp *commitProcessor) deriveInitSecret() error {
	if cp.res.removedSelf {
		return nil
	}
	var err error
	if cp.res.externalInit != nil {
		cp.init, err = cp.g.secrets.ExternalInit(cp.res.externalInit.KEMOutput)
		if err != nil {
			return fmt.Errorf("%w: external init: %w", ErrInvalidCommit, mapErr(err))
		}
		return nil
	}
	cp.init, err = cp.g.secrets.NextInitSecret()
	return err
}

// deriveEpoch: transcript hashes, the new GroupContext, the key schedule
// and the confirmation tag (§8.2, §8, §12.4.2). A commit that removes
// this member cannot be followed: its epoch is not derived.
func (cp *commitProcessor) deriveEpoch() error {
	if cp.res.removedSelf {
		return nil
	}
	init := cp.init
	cp.init = nil
	_, err := cp.g.finishEpoch(cp.sc, cp.tree, cp.ac, init, cp.secret, validateOptions{}, false)
	return err
}
