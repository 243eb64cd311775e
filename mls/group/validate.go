package group

import (
	"fmt"
	"slices"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// proposalEntry is one proposal of a commit, with who proposed it and its
// reference when it was included by reference.
type proposalEntry struct {
	p      *wire.Proposal
	sender wire.Sender
	ref    []byte
}

// validateOptions carries what changes the rules: the context of a ReInit
// or branch (§11.2, §11.3), where a resumption PSK of usage reinit or
// branch is allowed in the new group's first commit.
type validateOptions struct {
	allowUsage wire.ResumptionPSKUsage
	extraPSKs  PSKResolver
}

// validateProposal checks one proposal on its own (§12.1), as sent by
// sender, against the group's current extensions.
func (g *Group) validateProposal(p *wire.Proposal, sender wire.Sender, opts validateOptions) error {
	if err := g.checkProposal(p, sender, g.ctx.Extensions, opts); err != nil {
		return err
	}
	// An Update's keys must be new to the tree (§7.3); for a standalone
	// proposal this can be checked against the current tree.
	if p.ProposalType == wire.ProposalTypeUpdate {
		if err := g.tree.CheckNewLeaf(treemath.LeafIndex(sender.LeafIndex), &p.Update.LeafNode); err != nil {
			return fmt.Errorf("%w: update: %w", ErrInvalidProposal, err)
		}
	}
	return nil
}

// checkProposal checks what §12.1 asks of each proposal type, and which
// sender types may send it (§12.1.8), with exts the GroupContext
// extensions in force for it.
func (g *Group) checkProposal(p *wire.Proposal, sender wire.Sender, exts []wire.Extension, opts validateOptions) error {
	if p == nil {
		return fmt.Errorf("%w: missing proposal", ErrInvalidProposal)
	}
	switch sender.SenderType {
	case wire.SenderTypeMember:
		if p.ProposalType == wire.ProposalTypeExternalInit {
			return fmt.Errorf("%w: %w: ExternalInit outside an external commit", ErrInvalidCommit, ErrInvalidProposal)
		}
	case wire.SenderTypeExternal:
		if !externalProposalType(p.ProposalType) {
			return fmt.Errorf("%w: %w: %v from an external sender", ErrInvalidProposal, ErrUnauthorizedSender, p.ProposalType)
		}
	case wire.SenderTypeNewMemberProposal:
		if p.ProposalType != wire.ProposalTypeAdd {
			return fmt.Errorf("%w: %w: %v from a new member", ErrInvalidProposal, ErrUnauthorizedSender, p.ProposalType)
		}
	case wire.SenderTypeNewMemberCommit:
		switch p.ProposalType {
		case wire.ProposalTypeExternalInit, wire.ProposalTypeRemove, wire.ProposalTypePSK:
		default:
			return fmt.Errorf("%w: %v in an external commit", ErrInvalidCommit, p.ProposalType)
		}
	default:
		return fmt.Errorf("%w: sender type %v", ErrInvalidProposal, sender.SenderType)
	}
	switch p.ProposalType {
	case wire.ProposalTypeAdd: // §12.1.1
		if p.Add == nil {
			return fmt.Errorf("%w: empty Add", ErrMalformed)
		}
		if err := validateKeyPackage(g.suite, &p.Add.KeyPackage, &g.cfg, exts); err != nil {
			return fmt.Errorf("%w: add: %w", ErrInvalidProposal, err)
		}
	case wire.ProposalTypeUpdate: // §12.1.2
		if p.Update == nil {
			return fmt.Errorf("%w: empty Update", ErrMalformed)
		}
		if sender.SenderType != wire.SenderTypeMember {
			return fmt.Errorf("%w: Update from a non-member", ErrInvalidProposal)
		}
		err := ratchettree.ValidateLeafNode(g.suite, &p.Update.LeafNode, treemath.LeafIndex(sender.LeafIndex), &ratchettree.ValidationOptions{
			GroupID:                g.ctx.GroupID,
			GroupContextExtensions: exts,
			ValidateCredential:     g.cfg.ValidateCredential,
			Source:                 wire.LeafNodeSourceUpdate,
		})
		if err != nil {
			return fmt.Errorf("%w: update: %w", ErrInvalidProposal, mapErr(err))
		}
	case wire.ProposalTypeRemove: // §12.1.3
		if p.Remove == nil {
			return fmt.Errorf("%w: empty Remove", ErrMalformed)
		}
		if !g.isMember(p.Remove.Removed) {
			return fmt.Errorf("%w: remove of blank leaf %d", ErrInvalidProposal, p.Remove.Removed)
		}
	case wire.ProposalTypePSK: // §12.1.4
		if p.PreSharedKey == nil {
			return fmt.Errorf("%w: empty PreSharedKey", ErrMalformed)
		}
		id := &p.PreSharedKey.PSK
		if len(id.PSKNonce) != g.suite.HashLen() {
			return fmt.Errorf("%w: psk_nonce of %d bytes", ErrInvalidProposal, len(id.PSKNonce))
		}
		if id.PSKType == wire.PSKTypeResumption && id.Usage != wire.ResumptionPSKUsageApplication && id.Usage != opts.allowUsage {
			return fmt.Errorf("%w: resumption PSK with usage %v", ErrInvalidProposal, id.Usage)
		}
	case wire.ProposalTypeReInit: // §12.1.5
		if p.ReInit == nil {
			return fmt.Errorf("%w: empty ReInit", ErrMalformed)
		}
		if p.ReInit.Version < g.ctx.Version {
			return fmt.Errorf("%w: ReInit to version %v", ErrInvalidProposal, p.ReInit.Version)
		}
		if err := wire.CheckExtensions(p.ReInit.Extensions); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	case wire.ProposalTypeExternalInit: // §12.1.6
		if p.ExternalInit == nil {
			return fmt.Errorf("%w: empty ExternalInit", ErrMalformed)
		}
		if sender.SenderType != wire.SenderTypeNewMemberCommit {
			return fmt.Errorf("%w: ExternalInit outside an external commit", ErrInvalidCommit)
		}
	case wire.ProposalTypeGroupContextExtensions: // §12.1.7
		if p.GroupContextExtensions == nil {
			return fmt.Errorf("%w: empty GroupContextExtensions", ErrMalformed)
		}
		if err := checkGroupContextExtensions(p.GroupContextExtensions.Extensions); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	default: // §13.2: custom proposals are checked against capabilities
		if p.ProposalType == 0 {
			return fmt.Errorf("%w: reserved proposal type", ErrMalformed)
		}
	}
	return nil
}

// checkGroupContextExtensions checks that the known GroupContext
// extensions decode.
func checkGroupContextExtensions(exts []wire.Extension) error {
	if err := wire.CheckExtensions(exts); err != nil {
		return err
	}
	for i := range exts {
		var err error
		switch exts[i].ExtensionType {
		case wire.ExtensionTypeRequiredCapabilities:
			_, err = exts[i].RequiredCapabilities()
		case wire.ExtensionTypeExternalSenders:
			_, err = exts[i].ExternalSenders()
		case wire.ExtensionTypeRatchetTree, wire.ExtensionTypeExternalPub:
			err = fmt.Errorf("%v is not a GroupContext extension", exts[i].ExtensionType)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addedMember is a member added by a commit.
type addedMember struct {
	leaf treemath.LeafIndex
	kp   *wire.KeyPackage
}

// applyResult is what applying a proposal list (§12.3) produced, besides
// the changed tree.
type applyResult struct {
	exts         []wire.Extension
	updated      []treemath.LeafIndex
	removed      []treemath.LeafIndex
	added        []addedMember
	psks         []wire.PreSharedKeyID
	externalInit *wire.ExternalInit
	reinit       *wire.ReInit
	ownUpdateRef []byte // our own Update, applied by another member's commit
	removedSelf  bool
	// removedLeaves are the removed leaves as they were.
	removedLeaves map[treemath.LeafIndex]*wire.LeafNode
	pathRequired  bool
}

// applyProposals validates the list of a commit sent by committer (§12.2)
// and applies it to tree (§12.3), which the caller has checkpointed. For an external
// commit, committer has type new_member_commit.
func (g *Group) applyProposals(tree *ratchettree.Tree, entries []proposalEntry, committer wire.Sender, opts validateOptions) (*applyResult, error) {
	res := &applyResult{exts: g.ctx.Extensions}
	external := committer.SenderType == wire.SenderTypeNewMemberCommit

	// §12.2: the new extensions are in force for the other proposals
	// (§12.3), so find them first.
	gce := 0
	for _, e := range entries {
		if e.p != nil && e.p.ProposalType == wire.ProposalTypeGroupContextExtensions && e.p.GroupContextExtensions != nil {
			gce++
			res.exts = e.p.GroupContextExtensions.Extensions
		}
	}
	if gce > 1 {
		return nil, fmt.Errorf("%w: %d GroupContextExtensions proposals", ErrInvalidCommit, gce)
	}

	// §12.2: each proposal valid on its own, and the list rules.
	touched := map[uint32]string{}
	addSig := map[string]bool{}
	pskIDs := map[string]bool{}
	var custom []wire.ProposalType
	counts := map[wire.ProposalType]int{}
	for _, e := range entries {
		if err := g.checkProposal(e.p, e.sender, res.exts, opts); err != nil {
			return nil, err
		}
		p := e.p
		counts[p.ProposalType]++
		switch p.ProposalType {
		case wire.ProposalTypeUpdate:
			l := e.sender.LeafIndex
			if !external && committer.SenderType == wire.SenderTypeMember && l == committer.LeafIndex {
				return nil, fmt.Errorf("%w: Update from the committer", ErrInvalidCommit)
			}
			if touched[l] != "" {
				return nil, fmt.Errorf("%w: Update and %s for leaf %d", ErrInvalidCommit, touched[l], l)
			}
			touched[l] = "Update"
			res.pathRequired = true
		case wire.ProposalTypeRemove:
			l := p.Remove.Removed
			if !external && l == committer.LeafIndex {
				return nil, fmt.Errorf("%w: Remove of the committer", ErrInvalidCommit)
			}
			if touched[l] != "" {
				return nil, fmt.Errorf("%w: Remove and %s for leaf %d", ErrInvalidCommit, touched[l], l)
			}
			touched[l] = "Remove"
			res.pathRequired = true
		case wire.ProposalTypeAdd:
			sk := string(p.Add.KeyPackage.LeafNode.SignatureKey)
			if addSig[sk] {
				return nil, fmt.Errorf("%w: two Adds of the same client", ErrInvalidCommit)
			}
			addSig[sk] = true
		case wire.ProposalTypePSK:
			id, err := codec.Marshal(&p.PreSharedKey.PSK)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			if pskIDs[string(id)] {
				return nil, fmt.Errorf("%w: the same PSK twice", ErrInvalidCommit)
			}
			pskIDs[string(id)] = true
			res.psks = append(res.psks, p.PreSharedKey.PSK)
		case wire.ProposalTypeReInit:
			res.reinit = p.ReInit
		case wire.ProposalTypeExternalInit:
			res.externalInit = p.ExternalInit
			res.pathRequired = true
		case wire.ProposalTypeGroupContextExtensions:
			res.pathRequired = true
		default:
			if !slices.Contains(custom, p.ProposalType) {
				custom = append(custom, p.ProposalType)
			}
		}
	}
	if res.reinit != nil && len(entries) != 1 {
		return nil, fmt.Errorf("%w: ReInit together with other proposals", ErrInvalidCommit)
	}
	if external {
		// §12.2: the list of an external commit.
		if counts[wire.ProposalTypeExternalInit] != 1 {
			return nil, fmt.Errorf("%w: external commit with %d ExternalInit proposals", ErrInvalidCommit, counts[wire.ProposalTypeExternalInit])
		}
		if counts[wire.ProposalTypeRemove] > 1 {
			return nil, fmt.Errorf("%w: external commit with %d Remove proposals", ErrInvalidCommit, counts[wire.ProposalTypeRemove])
		}
	}
	if len(entries) == 0 {
		res.pathRequired = true
	}

	// The leaves the Removes blank, as they were (an external commit's
	// resync is checked against them).
	for _, e := range entries {
		if e.p.ProposalType == wire.ProposalTypeRemove {
			if res.removedLeaves == nil {
				res.removedLeaves = map[treemath.LeafIndex]*wire.LeafNode{}
			}
			l := treemath.LeafIndex(e.p.Remove.Removed)
			res.removedLeaves[l] = tree.Leaf(l)
		}
	}

	// §12.3: apply, in order: extensions (above), Updates, Removes, Adds.
	if err := g.applyToTree(tree, entries, committer, res); err != nil {
		return nil, err
	}

	// §12.1.7, §11.1: with new extensions, every member must support
	// them; custom proposals must be supported by every member that
	// processes the commit (§12.2).
	if gce > 0 || len(custom) > 0 {
		added := map[treemath.LeafIndex]bool{}
		for _, a := range res.added {
			added[a.leaf] = true
		}
		var rc *wire.RequiredCapabilities
		if e := wire.FindExtension(res.exts, wire.ExtensionTypeRequiredCapabilities); e != nil {
			rc, _ = e.RequiredCapabilities()
		}
		for l, ln := range tree.Members() {
			if gce > 0 {
				if err := supportsGroup(&ln.Capabilities, res.exts, rc); err != nil {
					return nil, fmt.Errorf("%w: leaf %d: %w", ErrInvalidProposal, l, err)
				}
			}
			if added[l] {
				continue
			}
			for _, t := range custom {
				if !slices.Contains(ln.Capabilities.Proposals, t) {
					return nil, fmt.Errorf("%w: %w: leaf %d does not support proposal type %v", ErrInvalidCommit, ErrUnsupported, l, t)
				}
			}
		}
		if len(custom) > 0 {
			res.pathRequired = true
		}
	}
	return res, nil
}

// applyToTree applies the tree changes of a validated proposal list
// (§12.3): Updates, then Removes, then Adds in order, each new leaf checked
// against the tree (§7.3: fresh keys). It records the affected leaves in
// res, and is replayed when a staged commit is merged.
func (g *Group) applyToTree(tree *ratchettree.Tree, entries []proposalEntry, committer wire.Sender, res *applyResult) error {
	res.updated, res.removed, res.added = nil, nil, nil
	res.ownUpdateRef, res.removedSelf = nil, false
	for _, e := range entries {
		if e.p.ProposalType != wire.ProposalTypeUpdate {
			continue
		}
		l := treemath.LeafIndex(e.sender.LeafIndex)
		ln := &e.p.Update.LeafNode
		if err := tree.CheckNewLeaf(l, ln); err != nil {
			return fmt.Errorf("%w: update of leaf %d: %w", ErrInvalidProposal, l, err)
		}
		if err := tree.UpdateLeaf(l, ln); err != nil {
			return fmt.Errorf("%w: update of leaf %d: %w", ErrInvalidProposal, l, err)
		}
		res.updated = append(res.updated, l)
		if l == g.own && committer.LeafIndex != uint32(g.own) {
			res.ownUpdateRef = e.ref
		}
	}
	for _, e := range entries {
		if e.p.ProposalType != wire.ProposalTypeRemove {
			continue
		}
		l := treemath.LeafIndex(e.p.Remove.Removed)
		if err := tree.RemoveLeaf(l); err != nil {
			return fmt.Errorf("%w: remove of leaf %d: %w", ErrInvalidProposal, l, err)
		}
		res.removed = append(res.removed, l)
		if l == g.own {
			res.removedSelf = true
		}
	}
	for _, e := range entries {
		if e.p.ProposalType != wire.ProposalTypeAdd {
			continue
		}
		kp := &e.p.Add.KeyPackage
		// A client already in the group (same signature key) may only be
		// added if the same commit removes it; CheckNewLeaf runs after the
		// Removes and also rejects keys reused across leaves (§7.3).
		if err := tree.CheckNewLeaf(treemath.LeafIndex(tree.LeafCount()), &kp.LeafNode); err != nil {
			return fmt.Errorf("%w: add: %w", ErrInvalidProposal, err)
		}
		l, err := tree.AddLeaf(&kp.LeafNode)
		if err != nil {
			return fmt.Errorf("%w: add: %w", ErrInvalidProposal, err)
		}
		res.added = append(res.added, addedMember{leaf: l, kp: kp})
	}
	return nil
}

// supportsGroup checks a leaf's capabilities against GroupContext
// extensions exts and their required capabilities (§11.1, §13.4).
func supportsGroup(c *wire.Capabilities, exts []wire.Extension, rc *wire.RequiredCapabilities) error {
	for _, e := range exts {
		if !isDefaultExtension(e.ExtensionType) && !slices.Contains(c.Extensions, e.ExtensionType) {
			return fmt.Errorf("%w: extension %v", ErrUnsupported, e.ExtensionType)
		}
	}
	if rc == nil {
		return nil
	}
	for _, t := range rc.ExtensionTypes {
		if !isDefaultExtension(t) && !slices.Contains(c.Extensions, t) {
			return fmt.Errorf("%w: required extension %v", ErrUnsupported, t)
		}
	}
	for _, t := range rc.ProposalTypes {
		if !isDefaultProposal(t) && !slices.Contains(c.Proposals, t) {
			return fmt.Errorf("%w: required proposal %v", ErrUnsupported, t)
		}
	}
	for _, t := range rc.CredentialTypes {
		if !slices.Contains(c.Credentials, t) {
			return fmt.Errorf("%w: required credential %v", ErrUnsupported, t)
		}
	}
	return nil
}

// sameClient is the application's notion of "the same client" for an
// external resync (§12.2): the same credential.
func sameClient(a, b *wire.LeafNode) bool {
	return a != nil && b != nil && a.Credential.Equal(&b.Credential)
}

// pathRequiredFor is the §12.4 rule for a commit being created: the path is
// required by the proposals, or the caller asked for it.
func pathRequiredFor(res *applyResult, force bool) bool { return force || res.pathRequired }
