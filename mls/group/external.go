package group

import (
	"fmt"
	"github.com/mlsengine/mlsengine/storage"
	"math"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// GroupInfoOptions are the optional inputs of Group.GroupInfo.
type GroupInfoOptions struct {
	// RatchetTree includes the ratchet_tree extension (§12.4.3.3);
	// otherwise joiners need the tree out of band (Group.RatchetTreeBytes).
	RatchetTree bool
	// NoExternalPub leaves out the external_pub extension, so that the
	// GroupInfo cannot be used for an external join (§12.4.3.2).
	NoExternalPub bool
}

// GroupInfo returns a GroupInfo of the current epoch signed by this member
// (§12.4.3), by default with the external_pub extension that lets a new
// member join by external commit (§12.4.3.2).
func (g *Group) GroupInfo(opts *GroupInfoOptions) (*wire.MLSMessage, error) {
	if opts == nil {
		opts = &GroupInfoOptions{}
	}
	if err := g.checkActive(); err != nil {
		return nil, err
	}
	var pub []byte
	if !opts.NoExternalPub {
		k, err := g.secrets.ExternalKeyPair()
		if err != nil {
			return nil, err
		}
		pub = k.PublicKey()
	}
	gi, err := g.signGroupInfo(&g.ctx, g.confTag, g.tree, opts.RatchetTree, pub)
	if err != nil {
		return nil, err
	}
	return wire.WrapGroupInfo(gi), nil
}

// ExternalJoinOptions are the optional inputs of JoinExternal.
type ExternalJoinOptions struct {
	// RatchetTree is the encoded ratchet tree, for a GroupInfo without
	// the ratchet_tree extension.
	RatchetTree []byte
	// Resync, if set, removes the joiner's old appearance at this leaf in
	// the same commit (§12.4.3.2 "resync"); the old leaf must carry the
	// same credential.
	Resync *treemath.LeafIndex
	// PSKs are injected with PreSharedKey proposals (§12.2 allows them in
	// an external commit); empty nonces are filled in. They are resolved
	// with Config.PSKs.
	PSKs []wire.PreSharedKeyID
	// AuthenticatedData is sent in the clear with the commit.
	AuthenticatedData []byte
}

// JoinExternal joins a group by external commit (§12.4.3.2) from a
// GroupInfo carrying the external_pub extension: it verifies the GroupInfo
// and the tree, derives the init secret by external initialization (§8.3),
// and builds the commit (ExternalInit, an optional resync Remove, PSKs, and
// a path from the leftmost blank leaf). It returns the joiner's state in the
// new epoch and the commit, a PublicMessage, to send to the group. If the
// group does not accept the commit (another commit won), the state is
// useless: join again from a newer GroupInfo.
func JoinExternal(cfg *Config, gi *wire.GroupInfo, id *Identity, opts *ExternalJoinOptions) (*Group, *wire.MLSMessage, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if opts == nil {
		opts = &ExternalJoinOptions{}
	}
	if gi == nil {
		return nil, nil, fmt.Errorf("%w: nil GroupInfo", ErrInvalidArgument)
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(gi.GroupContext.CipherSuite))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w: %w", ErrInvalidGroupInfo, ErrUnsupported, err)
	}
	if err := id.check(suite); err != nil {
		return nil, nil, err
	}

	// §12.4.3.2: the tree, verified as a joiner verifies it, and the
	// GroupInfo's signature by the member at leaf signer.
	tree, err := joinTree(suite, gi, opts.RatchetTree)
	if err != nil {
		return nil, nil, err
	}
	if err := tree.CheckTreeHash(gi.GroupContext.TreeHash); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	err = tree.Validate(&ratchettree.ValidationOptions{
		GroupID:                gi.GroupContext.GroupID,
		Now:                    cfg.now(),
		MaxLifetime:            cfg.MaxLeafLifetime,
		GroupContextExtensions: gi.GroupContext.Extensions,
		ValidateCredential:     cfg.ValidateCredential,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidTree, mapErr(err))
	}
	signerKey := tree.SignatureKey(treemath.LeafIndex(gi.Signer))
	if signerKey == nil {
		return nil, nil, fmt.Errorf("%w: signer leaf %d is blank", ErrInvalidGroupInfo, gi.Signer)
	}
	if err := suite.VerifyWithLabel(signerKey, "GroupInfoTBS", gi.TBS(), gi.Signature); err != nil {
		return nil, nil, fmt.Errorf("%w: %w: %w", ErrInvalidGroupInfo, ErrBadSignature, err)
	}
	ext := wire.FindExtension(gi.Extensions, wire.ExtensionTypeExternalPub)
	if ext == nil {
		return nil, nil, fmt.Errorf("%w: no external_pub extension", ErrInvalidGroupInfo)
	}
	ep, err := ext.ExternalPub()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}

	// The joiner's view of the group before its commit.
	g := newGroup(cfg, suite, id.SigningKey)
	g.ctx = cloneContext(&gi.GroupContext)
	g.tree = tree
	g.own = math.MaxUint32 // no leaf yet
	if g.interim, err = keyschedule.InterimTranscriptHash(suite, g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		return nil, nil, err
	}

	// §8.3: external initialization.
	kem, init, err := keyschedule.ExternalInitSender(suite, ep.ExternalPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: external_pub: %w", ErrInvalidGroupInfo, err)
	}
	committer := wire.Sender{SenderType: wire.SenderTypeNewMemberCommit}
	entries := []proposalEntry{{sender: committer, p: &wire.Proposal{ProposalType: wire.ProposalTypeExternalInit, ExternalInit: &wire.ExternalInit{KEMOutput: kem}}}}
	if opts.Resync != nil {
		old := tree.Leaf(*opts.Resync)
		if old == nil || !old.Credential.Equal(&id.Credential) {
			init.Clear()
			return nil, nil, fmt.Errorf("%w: resync leaf %d is not this client", ErrInvalidArgument, *opts.Resync)
		}
		entries = append(entries, proposalEntry{sender: committer, p: &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: uint32(*opts.Resync)}}})
	}
	for _, psk := range opts.PSKs {
		if len(psk.PSKNonce) == 0 {
			if psk, err = newPSKID(suite, cfg.rand(), psk); err != nil {
				init.Clear()
				return nil, nil, err
			}
		}
		entries = append(entries, proposalEntry{sender: committer, p: &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: psk}}})
	}

	// §12.2, §12.3 on a copy of the tree; then the path from the leftmost
	// blank leaf (§12.4.1).
	nt := tree // the joiner's own copy: changed in place
	res, err := g.applyProposals(nt, entries, committer, validateOptions{})
	if err != nil {
		init.Clear()
		return nil, nil, err
	}
	sc := g.newStaged(committer, entries, res)
	template := &wire.LeafNode{
		SignatureKey:   id.SigningKey.PublicKey(),
		Credential:     id.Credential,
		Capabilities:   id.capabilities(suite.ID()),
		LeafNodeSource: wire.LeafNodeSourceCommit,
		Extensions:     leafExtensions(id),
	}
	if err := supportsGroup(&template.Capabilities, res.exts, requiredCapabilities(res.exts)); err != nil {
		init.Clear()
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	leaf, err := reserveLeaf(nt, template)
	if err != nil {
		init.Clear()
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	sc.newMember, sc.leaf = leaf, leaf
	cr, err := treekem.CreateUpdatePath(nt, treekem.CreateParams{
		Sender:       leaf,
		GroupID:      g.ctx.GroupID,
		SigningKey:   id.SigningKey,
		LeafNode:     template,
		GroupContext: sc.provisionalContext,
		Rand:         cfg.rand(),
	})
	if err != nil {
		init.Clear()
		return nil, nil, fmt.Errorf("group: creating the update path: %w", err)
	}
	defer cr.Clear()
	sc.priv = cr.State

	// §12.4.3.2: signed by the new member with the GroupInfo's context,
	// always a PublicMessage.
	aad := opts.AuthenticatedData
	if aad == nil {
		aad = []byte{}
	}
	content := wire.FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            committer,
		AuthenticatedData: aad,
		ContentType:       wire.ContentTypeCommit,
		Commit:            &wire.Commit{Proposals: proposalOrRefs(entries), Path: cr.Path},
	}
	fe := &framing.Epoch{Suite: suite, Context: &g.ctx}
	ac, err := fe.Sign(wire.WireFormatPublicMessage, &content, id.SigningKey)
	if err != nil {
		init.Clear()
		return nil, nil, mapErr(err)
	}
	sc.path = cr.Path
	if _, err := g.finishEpoch(sc, nt, ac, init, cr.CommitSecret, validateOptions{}, true); err != nil {
		return nil, nil, err
	}
	pm, err := fe.ProtectPublic(ac)
	if err != nil {
		sc.discard()
		return nil, nil, mapErr(err)
	}

	// The joiner is a member of the new epoch at once.
	g.ctx = sc.ctx
	g.tree = nt
	g.interim = sc.interim
	g.confTag = sc.confTag
	if err := g.installEpochSecrets(sc.secrets, sc.senderData, sc.resumption, sc.encryption, sc.priv); err != nil {
		return nil, nil, err
	}
	sc.done = true
	return g, wire.WrapPublicMessage(pm), nil
}

// installEpochSecrets is installEpoch for secrets already taken from the
// key schedule.
func (g *Group) installEpochSecrets(s *keyschedule.Epoch, senderData, resumption, encryption secret.Secret, priv *treekem.PrivateState) error {
	g.secrets = s
	g.own = priv.Leaf()
	g.setPriv(priv)
	g.log.own(groupScope, storage.KeyMaterial, persist.EpochSecretsName(g.ctx.Epoch), epochRecord(g.secrets))
	if err := g.startMessages(senderData, encryption); err != nil {
		return err
	}
	g.addResumption(g.ctx.Epoch, resumption)
	g.log.own(groupScope, storage.Public, persist.JoinConfigName, g.cfg.marshal())
	g.logFullTree()
	g.logState()
	return nil
}
