package group

import (
	"encoding/hex"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"slices"
	"strconv"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Status is the lifecycle state of a group as seen by this member.
type Status uint8

// The statuses of a group.
const (
	// StatusActive: the member can send and receive.
	StatusActive Status = 1
	// StatusRemoved: a commit removed this member (§12.4.2). Late
	// application messages of retained past epochs still decrypt.
	StatusRemoved Status = 2
	// StatusReInit: a commit with a ReInit proposal ended the group
	// (§11.2); continue in the new group (Group.ReInit, or a Welcome).
	StatusReInit Status = 3
)

// String names the status.
func (s Status) String() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusRemoved:
		return "removed"
	case StatusReInit:
		return "reinit"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Group is one member's state of one MLS group. It is a pure state
// machine: no I/O, no clock or randomness but the Config's, and every change
// to its persisted state is logged for TakeChanges.
//
// A Group is not safe for concurrent use; serialize the calls of one
// group.
type Group struct {
	cfg    Config
	suite  *ciphersuite.Suite
	signer *ciphersuite.SigningKey

	// Public state.
	ctx     wire.GroupContext // §8.1
	tree    *ratchettree.Tree // §7
	interim []byte            // interim_transcript_hash (§8.2)
	confTag []byte            // confirmation_tag of the epoch's commit
	own     treemath.LeafIndex
	status  Status
	reinit  *wire.ReInit // the committed ReInit (StatusReInit)
	queue   proposalQueue
	pending *pendingCommit

	// Key material.
	priv       *treekem.PrivateState // HPKE keys of the own leaf and direct path
	stored     *storedPriv           // priv as restored, until privState decodes it
	secrets    *keyschedule.Epoch    // nil once removed or ended
	cur        *msgEpoch             // message secrets of the current epoch
	past       []*msgEpoch           // retained past epochs, oldest first
	resumption []resumptionPSK       // ascending epochs, the current one last
	updates    map[string]*ciphersuite.HPKEPrivateKey

	log *changeLog
	// The tree records last logged: their width, the chunk size of layout
	// 1 (0 for layout 2), and the nodes of layout 2 stored in records of
	// their own (treerecords.go, mls/persist/tree.go).
	storedCS, storedWidth uint32
	extNodes              map[uint32]bool
}

// msgEpoch is the message-protection state of one epoch: its
// sender_data_secret and secret tree (key material), and what verifying a
// late message of a past epoch needs (public: the epoch's GroupContext and
// the members' signature keys).
type msgEpoch struct {
	epoch      uint64
	senderData secret.Secret
	tree       *msgTree
	ctx        *wire.GroupContext // past epochs only
	members    *pastMembers       // past epochs only
}

type resumptionPSK struct {
	epoch uint64
	psk   secret.Secret
}

// Suite returns the group's cipher suite.
func (g *Group) Suite() *ciphersuite.Suite { return g.suite }

// GroupID returns the group's id.
func (g *Group) GroupID() []byte { return slices.Clone(g.ctx.GroupID) }

// Epoch returns the current epoch number.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// Status reports whether the member is active, removed, or the group was
// reinitialized.
func (g *Group) Status() Status { return g.status }

// Active reports whether the member can still send and process handshake
// messages.
func (g *Group) Active() bool { return g.status == StatusActive }

// OwnLeafIndex returns the member's leaf index.
func (g *Group) OwnLeafIndex() treemath.LeafIndex { return g.own }

// GroupContext returns a copy of the current GroupContext (§8.1).
func (g *Group) GroupContext() *wire.GroupContext {
	c := cloneContext(&g.ctx)
	return &c
}

// Extensions returns the GroupContext extensions.
func (g *Group) Extensions() []wire.Extension { return cloneExtensions(g.ctx.Extensions) }

// EpochAuthenticator returns the epoch_authenticator of the current epoch
// (§8.7), or an empty secret if the member was removed.
func (g *Group) EpochAuthenticator() secret.Secret {
	if g.secrets == nil {
		return secret.Secret{}
	}
	return g.secrets.EpochAuthenticator()
}

// ConfirmationTag returns the confirmation tag of the commit that started
// the current epoch.
func (g *Group) ConfirmationTag() []byte { return slices.Clone(g.confTag) }

// InterimTranscriptHash returns the interim transcript hash (§8.2).
func (g *Group) InterimTranscriptHash() []byte { return slices.Clone(g.interim) }

// Member is one member of the group, as its leaf shows it.
type Member struct {
	Index        treemath.LeafIndex
	Credential   wire.Credential
	SignatureKey []byte
	// EncryptionKey is the HPKE public key of the member's leaf.
	EncryptionKey []byte
}

// Members lists the members in leaf order.
func (g *Group) Members() []Member {
	var out []Member
	for l, ln := range g.tree.Members() {
		out = append(out, Member{Index: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey, EncryptionKey: ln.EncryptionKey})
	}
	return out
}

// MemberCount returns the number of members.
func (g *Group) MemberCount() int { return g.tree.MemberCount() }

// Member returns the leaf node of the member at leaf l, or nil if the leaf
// is blank.
func (g *Group) Member(l treemath.LeafIndex) *wire.LeafNode { return g.tree.Leaf(l) }

// RatchetTree returns the public ratchet tree in the form of the
// ratchet_tree extension (§12.4.3.3), for joiners that receive it out of
// band.
func (g *Group) RatchetTree() wire.RatchetTree { return g.tree.Wire() }

// RatchetTreeBytes returns the encoded ratchet_tree extension body.
func (g *Group) RatchetTreeBytes() []byte { return g.tree.Bytes() }

// PendingProposals returns the proposals queued in this epoch, in the
// order they were received.
func (g *Group) PendingProposals() []QueuedProposal {
	var out []QueuedProposal
	for _, q := range g.queue.list {
		out = append(out, QueuedProposal{Ref: slices.Clone(q.ref), Proposal: q.ac.Content.Proposal, Sender: q.ac.Content.Sender})
	}
	return out
}

// QueuedProposal is a proposal received (or sent) in the current epoch and
// not yet committed.
type QueuedProposal struct {
	Ref      []byte // ProposalRef (§5.2)
	Proposal *wire.Proposal
	Sender   wire.Sender
}

func (g *Group) checkActive() error {
	if g.status != StatusActive {
		return fmt.Errorf("%w: %v", ErrInactive, g.status)
	}
	return nil
}

func cloneContext(c *wire.GroupContext) wire.GroupContext {
	return wire.GroupContext{
		Version:                 c.Version,
		CipherSuite:             c.CipherSuite,
		GroupID:                 slices.Clone(c.GroupID),
		Epoch:                   c.Epoch,
		TreeHash:                slices.Clone(c.TreeHash),
		ConfirmedTranscriptHash: slices.Clone(c.ConfirmedTranscriptHash),
		Extensions:              cloneExtensions(c.Extensions),
	}
}

func cloneExtensions(exts []wire.Extension) []wire.Extension {
	out := make([]wire.Extension, len(exts))
	for i, e := range exts {
		out[i] = wire.Extension{ExtensionType: e.ExtensionType, ExtensionData: slices.Clone(e.ExtensionData)}
	}
	return out
}

// signatureKey returns the signature key of the member at leaf in the
// current tree, or nil.
func (g *Group) signatureKey(leaf uint32) []byte {
	return g.tree.SignatureKey(treemath.LeafIndex(leaf))
}

func (g *Group) isMember(leaf uint32) bool {
	return uint64(leaf) < uint64(g.tree.LeafCount()) && !g.tree.IsBlank(treemath.NodeIndex(2*leaf))
}

// currentPrivateEpoch describes the current epoch for unprotecting.
func (g *Group) currentPrivateEpoch() *privateEpoch {
	return &privateEpoch{
		suite:    g.suite,
		ctx:      &g.ctx,
		secrets:  &senderDataSecrets{suite: g.suite, senderData: g.cur.senderData, current: g.secrets},
		tree:     g.cur.tree,
		isMember: g.isMember,
		sigKey:   g.signatureKey,
	}
}

// pastPrivateEpoch describes the retained past epoch g.past[i] for
// unprotecting.
func (g *Group) pastPrivateEpoch(i int) *privateEpoch {
	m := g.past[i]
	return &privateEpoch{
		suite:    g.suite,
		ctx:      m.ctx,
		secrets:  &senderDataSecrets{suite: g.suite, senderData: m.senderData},
		tree:     m.tree,
		isMember: func(l uint32) bool { return g.pastSigKey(i, l) != nil },
		sigKey:   func(l uint32) []byte { return g.pastSigKey(i, l) },
	}
}

// refName encodes a hash reference for a record name.
func refName(ref []byte) string { return hex.EncodeToString(ref) }

// ResumptionPSK returns a copy of the resumption_psk of epoch (§8.6), if
// the group still keeps it.
func (g *Group) ResumptionPSK(epoch uint64) (secret.Secret, error) {
	for _, r := range g.resumption {
		if r.epoch == epoch {
			return secret.Copy(r.psk.Bytes()), nil
		}
	}
	return secret.Secret{}, fmt.Errorf("%w: resumption PSK of epoch %d not kept", ErrUnknownPSK, epoch)
}

// PSKResolver returns a resolver of this group's resumption PSKs (§8.6),
// for a member joining the group that a ReInit or branch of this group
// creates (JoinOptions.PSKs).
func (g *Group) PSKResolver() PSKResolver {
	gid := slices.Clone(g.ctx.GroupID)
	return func(id *wire.PreSharedKeyID) (secret.Secret, error) {
		if id.PSKType != wire.PSKTypeResumption || string(id.PSKGroupID) != string(gid) {
			return secret.Secret{}, ErrUnknownPSK
		}
		return g.ResumptionPSK(id.PSKEpoch)
	}
}
