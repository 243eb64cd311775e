package group

import (
	"fmt"
	"github.com/mlsengine/mlsengine/storage"
	"io"
	"slices"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/persist"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// proposalQueue holds the proposals of the current epoch that a commit may
// reference (§12.1: "cached in such a way that it can be retrieved by
// hash"), in the order they arrived.
type proposalQueue struct {
	list  []*queuedProposal
	byRef map[string]*queuedProposal
}

type queuedProposal struct {
	ref []byte
	ac  *wire.AuthenticatedContent
}

func (q *proposalQueue) find(ref []byte) *queuedProposal {
	if q.byRef == nil {
		return nil
	}
	return q.byRef[string(ref)]
}

// enqueue queues qp and logs its record; a proposal already queued is
// ignored.
func (g *Group) enqueue(qp *queuedProposal) {
	q := &g.queue
	if q.byRef == nil {
		q.byRef = map[string]*queuedProposal{}
	}
	if _, ok := q.byRef[string(qp.ref)]; ok {
		return
	}
	// Keep a copy that no caller's message aliases.
	if cp, err := wire.Unmarshal[wire.AuthenticatedContent](qp.ac.Bytes()); err == nil {
		qp.ac = cp
	}
	q.byRef[string(qp.ref)] = qp
	q.list = append(q.list, qp)
	g.log.own(groupScope, storage.Public, persist.ProposalName(qp.ref), persist.QueuedValue(len(q.list)-1, qp.ac.Bytes()))
}

// dropQueue empties the queue and deletes the pending Update keys (§9.2:
// proposals and their keys do not outlive the epoch).
func (g *Group) dropQueue() {
	for _, qp := range g.queue.list {
		g.log.del(groupScope, storage.Public, persist.ProposalName(qp.ref))
	}
	g.queue = proposalQueue{}
	for name := range g.updates {
		g.log.del(groupScope, storage.KeyMaterial, persist.PendingUpdateName(name))
	}
	g.updates = nil
}

// sign signs content, for wire format wf, as this member (§6.1).
func (g *Group) sign(wf wire.WireFormat, content *wire.FramedContent) (*wire.AuthenticatedContent, error) {
	fe := &framing.Epoch{Suite: g.suite, Context: &g.ctx, Rand: g.cfg.rand()}
	ac, err := fe.Sign(wf, content, g.signer)
	if err != nil {
		return nil, mapErr(err)
	}
	return ac, nil
}

// protectSigned protects a signed content of the current epoch as a
// PublicMessage (§6.2) or PrivateMessage (§6.3).
func (g *Group) protectSigned(ac *wire.AuthenticatedContent) (*wire.MLSMessage, error) {
	sds := &senderDataSecrets{suite: g.suite, senderData: g.cur.senderData, current: g.secrets}
	if ac.WireFormat == wire.WireFormatPublicMessage {
		fe := &framing.Epoch{Suite: g.suite, Context: &g.ctx, Secrets: sds}
		pm, err := fe.ProtectPublic(ac)
		if err != nil {
			return nil, mapErr(err)
		}
		return wire.WrapPublicMessage(pm), nil
	}
	pm, err := protectPrivate(g.suite, ac, g.cfg.PaddingBlock, g.cur.tree, sds, g.cfg.rand())
	if err != nil {
		return nil, err
	}
	return wire.WrapPrivateMessage(pm), nil
}

func (g *Group) memberContent(ct wire.ContentType, aad []byte) wire.FramedContent {
	if aad == nil {
		aad = []byte{}
	}
	return wire.FramedContent{
		GroupID:           g.ctx.GroupID,
		Epoch:             g.ctx.Epoch,
		Sender:            wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: uint32(g.own)},
		AuthenticatedData: aad,
		ContentType:       ct,
	}
}

// Propose sends a proposal (§12.1) of any type a member may send, and
// queues it so that a commit of this or another member can include it by
// reference. It returns the message to send and the proposal's ProposalRef.
// Prefer the typed helpers (ProposeAdd, ProposeUpdate, ...); an Update
// must be made with ProposeUpdate, which keeps the new leaf's private key.
func (g *Group) Propose(p *wire.Proposal) (*wire.MLSMessage, []byte, error) {
	if p != nil && p.ProposalType == wire.ProposalTypeUpdate {
		return nil, nil, fmt.Errorf("%w: use ProposeUpdate", ErrInvalidArgument)
	}
	return g.propose(p, nil)
}

func (g *Group) propose(p *wire.Proposal, updateKey *ciphersuite.HPKEPrivateKey) (*wire.MLSMessage, []byte, error) {
	if err := g.checkActive(); err != nil {
		return nil, nil, err
	}
	if g.pending != nil {
		return nil, nil, ErrPendingCommit
	}
	if p == nil {
		return nil, nil, fmt.Errorf("%w: nil proposal", ErrInvalidArgument)
	}
	sender := wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: uint32(g.own)}
	if err := g.validateProposal(p, sender, validateOptions{}); err != nil {
		return nil, nil, err
	}
	content := g.memberContent(wire.ContentTypeProposal, nil)
	content.Proposal = p
	ac, err := g.sign(g.cfg.handshakeWireFormat(), &content)
	if err != nil {
		return nil, nil, err
	}
	msg, err := g.protectSigned(ac)
	if err != nil {
		return nil, nil, err
	}
	ref := g.suite.MakeProposalRef(ac.Bytes())
	g.enqueue(&queuedProposal{ref: ref, ac: ac})
	if updateKey != nil {
		if g.updates == nil {
			g.updates = map[string]*ciphersuite.HPKEPrivateKey{}
		}
		name := refName(ref)
		g.updates[name] = updateKey
		g.logUpdateKey(name, updateKey)
	}
	return msg, slices.Clone(ref), nil
}

// ProposeAdd proposes adding the client of kp (§12.1.1).
func (g *Group) ProposeAdd(kp *wire.KeyPackage) (*wire.MLSMessage, []byte, error) {
	return g.propose(&wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *kp}}, nil)
}

// ProposeRemove proposes removing the member at leaf (§12.1.3).
func (g *Group) ProposeRemove(leaf treemath.LeafIndex) (*wire.MLSMessage, []byte, error) {
	return g.propose(&wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: uint32(leaf)}}, nil)
}

// Leave proposes this member's own removal, for another member to commit
// (§12.1.3: a member cannot commit its own removal). The group becomes
// StatusRemoved when that commit is processed.
func (g *Group) Leave() (*wire.MLSMessage, []byte, error) {
	return g.ProposeRemove(g.own)
}

// ProposeUpdate proposes replacing this member's leaf with one carrying a
// fresh encryption key (§12.1.2); id, if not nil, changes the credential,
// capabilities or extensions (its signing key must be the group's). The
// new private key is kept until a commit applies the Update or the epoch
// ends.
func (g *Group) ProposeUpdate(id *Identity) (*wire.MLSMessage, []byte, error) {
	if err := g.checkActive(); err != nil {
		return nil, nil, err
	}
	ln, key, err := g.newLeafNode(id, wire.LeafNodeSourceUpdate)
	if err != nil {
		return nil, nil, err
	}
	return g.propose(&wire.Proposal{ProposalType: wire.ProposalTypeUpdate, Update: &wire.Update{LeafNode: *ln}}, key)
}

// newLeafNode builds and signs a new leaf node for this member with a fresh
// encryption key, from the current leaf or id.
func (g *Group) newLeafNode(id *Identity, src wire.LeafNodeSource) (*wire.LeafNode, *ciphersuite.HPKEPrivateKey, error) {
	ln := g.tree.Leaf(g.own)
	if ln == nil {
		return nil, nil, fmt.Errorf("%w: own leaf is blank", ErrInactive)
	}
	ln.ClearRaw()
	if id != nil {
		if id.SigningKey != nil && string(id.SigningKey.PublicKey()) != string(g.signer.PublicKey()) {
			return nil, nil, fmt.Errorf("%w: a new signing key needs a new member (external commit)", ErrInvalidArgument)
		}
		ln.Credential = id.Credential
		ln.Capabilities = id.capabilities(g.suite.ID())
		ln.Extensions = leafExtensions(id)
	}
	key, err := g.suite.GenerateKeyPair(g.cfg.rand())
	if err != nil {
		return nil, nil, err
	}
	ln.EncryptionKey = key.PublicKey()
	ln.LeafNodeSource = src
	ln.Lifetime = nil
	ln.ParentHash = nil
	if err := signLeafNode(g.suite, g.signer, ln, g.ctx.GroupID, uint32(g.own)); err != nil {
		return nil, nil, err
	}
	return ln, key, nil
}

// ProposeExternalPSK proposes injecting the external PSK pskID (§12.1.4),
// which Config.PSKs must resolve, with a fresh random nonce.
func (g *Group) ProposeExternalPSK(pskID []byte) (*wire.MLSMessage, []byte, error) {
	id, err := g.newPSKID(wire.PreSharedKeyID{PSKType: wire.PSKTypeExternal, PSKID: slices.Clone(pskID)})
	if err != nil {
		return nil, nil, err
	}
	return g.propose(&wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: id}}, nil)
}

// ProposeResumptionPSK proposes injecting the resumption PSK of one of
// this group's past epochs (§12.1.4, usage application).
func (g *Group) ProposeResumptionPSK(epoch uint64) (*wire.MLSMessage, []byte, error) {
	id, err := g.newPSKID(wire.PreSharedKeyID{PSKType: wire.PSKTypeResumption, Usage: wire.ResumptionPSKUsageApplication, PSKGroupID: slices.Clone(g.ctx.GroupID), PSKEpoch: epoch})
	if err != nil {
		return nil, nil, err
	}
	return g.propose(&wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: id}}, nil)
}

// newPSKID fills in a fresh psk_nonce of KDF.Nh bytes (§8.4).
func (g *Group) newPSKID(id wire.PreSharedKeyID) (wire.PreSharedKeyID, error) {
	return newPSKID(g.suite, g.cfg.rand(), id)
}

func newPSKID(suite *ciphersuite.Suite, rnd io.Reader, id wire.PreSharedKeyID) (wire.PreSharedKeyID, error) {
	id.PSKNonce = make([]byte, suite.HashLen())
	if _, err := io.ReadFull(rnd, id.PSKNonce); err != nil {
		return id, fmt.Errorf("group: reading randomness: %w", err)
	}
	return id, nil
}

// ProposeReInit proposes reinitializing the group with a new group id,
// cipher suite and GroupContext extensions (§12.1.5, §11.2).
func (g *Group) ProposeReInit(groupID []byte, suite ciphersuite.ID, extensions []wire.Extension) (*wire.MLSMessage, []byte, error) {
	return g.propose(&wire.Proposal{ProposalType: wire.ProposalTypeReInit, ReInit: newReInit(groupID, suite, extensions)}, nil)
}

func newReInit(groupID []byte, suite ciphersuite.ID, extensions []wire.Extension) *wire.ReInit {
	if extensions == nil {
		extensions = []wire.Extension{}
	}
	return &wire.ReInit{GroupID: slices.Clone(groupID), Version: wire.ProtocolVersionMLS10, CipherSuite: uint16(suite), Extensions: cloneExtensions(extensions)}
}

// ProposeGroupContextExtensions proposes replacing the GroupContext
// extensions (§12.1.7).
func (g *Group) ProposeGroupContextExtensions(extensions []wire.Extension) (*wire.MLSMessage, []byte, error) {
	return g.propose(&wire.Proposal{ProposalType: wire.ProposalTypeGroupContextExtensions, GroupContextExtensions: &wire.GroupContextExtensions{Extensions: cloneExtensions(extensions)}}, nil)
}

// ProposeCustom sends a proposal of a custom type (§13.2) with an opaque
// body. Every member must list the type in its capabilities.
func (g *Group) ProposeCustom(t wire.ProposalType, body []byte) (*wire.MLSMessage, []byte, error) {
	if isDefaultProposal(t) || t == 0 {
		return nil, nil, fmt.Errorf("%w: %v is not a custom proposal type", ErrInvalidArgument, t)
	}
	return g.propose(&wire.Proposal{ProposalType: t, Custom: slices.Clone(body)}, nil)
}

// ExternalSenderKey is what an external sender (§12.1.8.1) needs to send
// proposals: its index in the group's external_senders extension and its
// signing key.
type ExternalSenderKey struct {
	Index      uint32
	SigningKey *ciphersuite.SigningKey
}

// NewExternalProposal builds a proposal sent by an external sender to the
// group groupID at epoch (§12.1.8): a PublicMessage without membership tag,
// signed with the external sender's key. Only add, remove, psk, reinit and
// group_context_extensions proposals may be sent this way.
func NewExternalProposal(suiteID ciphersuite.ID, groupID []byte, epoch uint64, sender ExternalSenderKey, p *wire.Proposal) (*wire.MLSMessage, error) {
	if p == nil || sender.SigningKey == nil {
		return nil, fmt.Errorf("%w: nil proposal or key", ErrInvalidArgument)
	}
	if !externalProposalType(p.ProposalType) {
		return nil, fmt.Errorf("%w: external senders may not send %v proposals", ErrUnauthorizedSender, p.ProposalType)
	}
	return newPublicProposal(suiteID, groupID, epoch, wire.Sender{SenderType: wire.SenderTypeExternal, SenderIndex: sender.Index}, sender.SigningKey, p)
}

// NewMemberAddProposal builds the Add proposal of a client that asks to
// join the group groupID at epoch (§12.1.8, sender type
// new_member_proposal), signed with the KeyPackage's signing key. A member
// commits it by reference.
func NewMemberAddProposal(groupID []byte, epoch uint64, kp *KeyPackageBundle) (*wire.MLSMessage, error) {
	p := &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *kp.KeyPackage}}
	return newPublicProposal(kp.suite.ID(), groupID, epoch, wire.Sender{SenderType: wire.SenderTypeNewMemberProposal}, kp.SigningKey, p)
}

func newPublicProposal(suiteID ciphersuite.ID, groupID []byte, epoch uint64, sender wire.Sender, key *ciphersuite.SigningKey, p *wire.Proposal) (*wire.MLSMessage, error) {
	suite, err := ciphersuite.Lookup(suiteID)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	content := wire.FramedContent{
		GroupID:           slices.Clone(groupID),
		Epoch:             epoch,
		Sender:            sender,
		AuthenticatedData: []byte{},
		ContentType:       wire.ContentTypeProposal,
		Proposal:          p,
	}
	fe := &framing.Epoch{Suite: suite}
	ac, err := fe.Sign(wire.WireFormatPublicMessage, &content, key)
	if err != nil {
		return nil, mapErr(err)
	}
	pm, err := fe.ProtectPublic(ac)
	if err != nil {
		return nil, mapErr(err)
	}
	return wire.WrapPublicMessage(pm), nil
}

// externalProposalType reports whether an external sender may send
// proposals of type t (§12.1.8).
func externalProposalType(t wire.ProposalType) bool {
	switch t {
	case wire.ProposalTypeAdd, wire.ProposalTypeRemove, wire.ProposalTypePSK,
		wire.ProposalTypeReInit, wire.ProposalTypeGroupContextExtensions:
		return true
	}
	return false
}
