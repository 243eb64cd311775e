package engine

import (
	"bytes"
	"context"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// CommitResult is what a commit produces: the commit message for the
// group and a Welcome for added members (nil if none). The group stays in
// its epoch until MergePendingCommit (or ClearPendingCommit).
type CommitResult struct {
	Commit  *wire.MLSMessage
	Welcome *wire.MLSMessage
	// Epoch is the epoch the commit creates.
	Epoch uint64
	// Added are the members the commit adds, with their leaves.
	Added []group.AddedMember
}

// Commit commits the queued proposals and opts.Proposals (RFC 9420
// §12.4.1) and stores the pending commit. Send the commit, then call
// MergePendingCommit once the delivery service accepted it, or
// ClearPendingCommit if another commit won.
//
// If storing the pending commit fails with ErrUnknownOutcome, the commit is
// kept: the next Commit (or AddMembers, RemoveMembers, SelfUpdate) on the
// handle returns it once its storage is confirmed, whatever its options,
// since it is the pending commit.
func (h *Group) Commit(ctx context.Context, opts *group.CommitOptions) (*CommitResult, error) {
	return call(ctx, h, "commit", callID("commit"), func(g *group.Group) (*CommitResult, bool, error) {
		r, err := g.Commit(opts)
		if err != nil {
			return nil, false, err
		}
		// The staged commit stays inside: discarding it is
		// ClearPendingCommit, which stores the change.
		return &CommitResult{Commit: r.Commit, Welcome: r.Welcome, Epoch: r.Staged.Epoch(), Added: r.Staged.Added()}, true, nil
	})
}

// AddMembers commits Add proposals (§12.1.1) for the clients of the key
// packages, which are validated first (§10.1; expired ones are refused
// with group.ErrKeyPackageExpired), together with the queued proposals.
func (h *Group) AddMembers(ctx context.Context, kps []*wire.KeyPackage) (*CommitResult, error) {
	ps := make([]*wire.Proposal, 0, len(kps))
	for _, kp := range kps {
		if kp == nil {
			return nil, fmt.Errorf("%w: nil key package", group.ErrInvalidArgument)
		}
		ps = append(ps, &wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *kp}})
	}
	return h.Commit(ctx, &group.CommitOptions{Proposals: ps})
}

// RemoveMembers commits Remove proposals (§12.1.3) for the members at the
// given leaves, together with the queued proposals.
func (h *Group) RemoveMembers(ctx context.Context, leaves []treemath.LeafIndex) (*CommitResult, error) {
	ps := make([]*wire.Proposal, 0, len(leaves))
	for _, l := range leaves {
		ps = append(ps, &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: uint32(l)}})
	}
	return h.Commit(ctx, &group.CommitOptions{Proposals: ps})
}

// SelfUpdate commits the queued proposals with a path that gives the
// member fresh keys (§12.4: forward secrecy and post-compromise security).
// id, if not nil, changes the member's credential, capabilities or leaf
// extensions (its signing key must stay the group's).
func (h *Group) SelfUpdate(ctx context.Context, id *group.Identity) (*CommitResult, error) {
	return h.Commit(ctx, &group.CommitOptions{ForcePath: true, Identity: id})
}

// MergePendingCommit moves the group to the epoch of its pending commit.
func (h *Group) MergePendingCommit(ctx context.Context) error {
	return h.do(ctx, "merge pending commit", func(g *group.Group) error { return g.MergePendingCommit() })
}

// ClearPendingCommit drops the pending commit and its secrets.
func (h *Group) ClearPendingCommit(ctx context.Context) error {
	return h.do(ctx, "clear pending commit", func(g *group.Group) error { return g.ClearPendingCommit() })
}

// proposal runs one of package group's Propose methods; kind and input
// identify the call.
func (h *Group) proposal(ctx context.Context, kind string, input []byte, f func(g *group.Group) (*wire.MLSMessage, []byte, error)) (*wire.MLSMessage, []byte, error) {
	type proposed struct {
		msg *wire.MLSMessage
		ref []byte
	}
	p, err := call(ctx, h, "propose", callID("propose "+kind, input), func(g *group.Group) (proposed, bool, error) {
		msg, ref, err := f(g)
		return proposed{msg, ref}, err == nil, err
	})
	return p.msg, p.ref, err
}

// ProposeAdd proposes adding the client of kp (§12.1.1) and queues the
// proposal. It returns the message to send and the ProposalRef.
func (h *Group) ProposeAdd(ctx context.Context, kp *wire.KeyPackage) (*wire.MLSMessage, []byte, error) {
	return h.proposal(ctx, "add", kp.Bytes(), func(g *group.Group) (*wire.MLSMessage, []byte, error) { return g.ProposeAdd(kp) })
}

// ProposeRemove proposes removing the member at leaf (§12.1.3).
func (h *Group) ProposeRemove(ctx context.Context, leaf treemath.LeafIndex) (*wire.MLSMessage, []byte, error) {
	return h.proposal(ctx, "remove", binary32(uint32(leaf)), func(g *group.Group) (*wire.MLSMessage, []byte, error) { return g.ProposeRemove(leaf) })
}

// ProposeUpdate proposes a fresh leaf for this member (§12.1.2); its
// private key is stored until the Update is committed or the epoch ends.
func (h *Group) ProposeUpdate(ctx context.Context, id *group.Identity) (*wire.MLSMessage, []byte, error) {
	return h.proposal(ctx, "update", nil, func(g *group.Group) (*wire.MLSMessage, []byte, error) { return g.ProposeUpdate(id) })
}

// ProposeExternalPSK proposes injecting the external PSK pskID (§12.1.4),
// which Config.PSKs must resolve.
func (h *Group) ProposeExternalPSK(ctx context.Context, pskID []byte) (*wire.MLSMessage, []byte, error) {
	return h.proposal(ctx, "external psk", pskID, func(g *group.Group) (*wire.MLSMessage, []byte, error) { return g.ProposeExternalPSK(pskID) })
}

// ProposeResumptionPSK proposes injecting the resumption PSK of one of
// the group's retained past epochs (§12.1.4).
func (h *Group) ProposeResumptionPSK(ctx context.Context, epoch uint64) (*wire.MLSMessage, []byte, error) {
	return h.proposal(ctx, "resumption psk", binary64(epoch), func(g *group.Group) (*wire.MLSMessage, []byte, error) { return g.ProposeResumptionPSK(epoch) })
}

// ProposeReInit proposes reinitializing the group (§12.1.5, §11.2).
func (h *Group) ProposeReInit(ctx context.Context, groupID []byte, suite ciphersuite.ID, extensions []wire.Extension) (*wire.MLSMessage, []byte, error) {
	return h.proposal(ctx, "reinit", groupID, func(g *group.Group) (*wire.MLSMessage, []byte, error) {
		return g.ProposeReInit(groupID, suite, extensions)
	})
}

// ProposeGroupContextExtensions proposes new GroupContext extensions
// (§12.1.7).
func (h *Group) ProposeGroupContextExtensions(ctx context.Context, extensions []wire.Extension) (*wire.MLSMessage, []byte, error) {
	return h.proposal(ctx, "group context extensions", nil, func(g *group.Group) (*wire.MLSMessage, []byte, error) {
		return g.ProposeGroupContextExtensions(extensions)
	})
}

// ProposeCustom sends a proposal of a custom type (§13.2).
func (h *Group) ProposeCustom(ctx context.Context, t wire.ProposalType, body []byte) (*wire.MLSMessage, []byte, error) {
	return h.proposal(ctx, "custom", append(binary32(uint32(t)), body...), func(g *group.Group) (*wire.MLSMessage, []byte, error) { return g.ProposeCustom(t, body) })
}

// Leave proposes this member's own removal, for another member to commit
// (§12.1.3).
func (h *Group) Leave(ctx context.Context) (*wire.MLSMessage, error) {
	msg, _, err := h.proposal(ctx, "leave", nil, func(g *group.Group) (*wire.MLSMessage, []byte, error) { return g.Leave() })
	return msg, err
}

// ReceivedMessage is the outcome of Process (see group.ReceivedMessage).
type ReceivedMessage = group.ReceivedMessage

// Process authenticates and processes a message of the group (§6, §12)
// and stores what it changed before returning: an application message
// (whose key is then deleted from storage), a proposal (now queued and
// stored), or a commit, which is staged for MergeStagedCommit. A rejected
// message changes nothing, in memory or in storage, and returns one of
// package group's errors.
//
// A staged commit lives in the handle's memory only: a reload (LoadGroup,
// Reload, or the one after ErrConflict) drops it, and the commit must be
// processed again. So processing a commit stores nothing by itself (not
// even the handshake key an encrypted commit used up, which would make the
// commit fail as a replay after a reload); it is stored with
// MergeStagedCommit, or with the next operation that stores.
func (h *Group) Process(ctx context.Context, m *wire.MLSMessage) (*ReceivedMessage, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil message", group.ErrMalformed)
	}
	return call(ctx, h, "process", callID("process", m.Bytes()), func(g *group.Group) (*ReceivedMessage, bool, error) {
		rm, err := g.Process(m)
		return rm, err == nil && rm.Commit == nil, err
	})
}

// ProcessBytes decodes an MLSMessage and processes it.
func (h *Group) ProcessBytes(ctx context.Context, b []byte) (*ReceivedMessage, error) {
	m, err := wire.Unmarshal[wire.MLSMessage](b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", group.ErrMalformed, err)
	}
	return h.Process(ctx, m)
}

// ProcessThen processes a message like Process and, before its changes are
// stored, hands the result to deliver: a consumer that must not lose a
// plaintext delivers it first (say, publishes it with an idempotent id)
// and only then lets the message's key be deleted. If deliver fails,
// nothing is stored and the group is as before, so the message can be
// processed again. For a commit, which is stored when merged, deliver runs
// before Process returns the staged commit. deliver runs with the handle
// locked: it must not call the handle's methods.
func (h *Group) ProcessThen(ctx context.Context, b []byte, deliver func(*ReceivedMessage) error) (*ReceivedMessage, error) {
	return h.processThen(ctx, b, deliver, false)
}

// processThen is ProcessThen, and ProcessDeferred if deferApp.
func (h *Group) processThen(ctx context.Context, b []byte, deliver func(*ReceivedMessage) error, deferApp bool) (*ReceivedMessage, error) {
	m, err := wire.Unmarshal[wire.MLSMessage](b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", group.ErrMalformed, err)
	}
	return call(ctx, h, "process", callID("process", b), func(g *group.Group) (*ReceivedMessage, bool, error) {
		rm, err := g.Process(m)
		if err != nil {
			return nil, false, err
		}
		if err := deliver(rm); err != nil {
			return nil, false, fmt.Errorf("engine: delivering before storing: %w", err)
		}
		// A commit is stored when merged; an application message, if
		// deferred, with the next unit.
		store := rm.Commit == nil && (rm.Proposal != nil || !deferApp)
		return rm, store, nil
	})
}

// ProcessDeferred is ProcessThen for a caller that can apply its input
// again after a crash, such as a worker reading a durable log: the changes
// of an application message (its key deleted, its sender's ratchet moved
// on) stay in the handle and are stored with the next unit the handle
// writes, by any operation or by Flush. A run of messages then costs one
// unit, and one erasure of each ratchet's old state, instead of one per
// message; the keys the run used and deleted never reach storage at all.
//
// Until that unit is stored, a crash or a reload loses the run, and the
// stored state can decrypt its messages again: the caller keeps its inputs
// (does not acknowledge them) until Flush returns, and delivers again what
// it reads again (its deliver step is idempotent). Proposals and commits are
// stored as with ProcessThen (a commit when it is merged), together with
// the run before them.
func (h *Group) ProcessDeferred(ctx context.Context, b []byte, deliver func(*ReceivedMessage) error) (*ReceivedMessage, error) {
	return h.processThen(ctx, b, deliver, true)
}

// Flush stores what the handle holds unstored (the changes ProcessDeferred
// left, a pending cursor) in one unit; with nothing to store it writes
// nothing.
func (h *Group) Flush(ctx context.Context) error {
	return h.do(ctx, "flush", func(*group.Group) error { return nil })
}

// MergeStagedCommit moves the group to the epoch of a commit that Process
// staged, and stores the new epoch (deleting the old epoch's secrets
// beyond what MaxPastEpochs keeps).
func (h *Group) MergeStagedCommit(ctx context.Context, sc *group.StagedCommit) error {
	return h.do(ctx, "merge staged commit", func(g *group.Group) error { return g.MergeStagedCommit(sc) })
}

// Protect encrypts application data as a PrivateMessage (§6.3) with
// authenticatedData in the clear; the generation it uses is stored as
// consumed before the message is returned.
func (h *Group) Protect(ctx context.Context, data, authenticatedData []byte) (*wire.MLSMessage, error) {
	return call(ctx, h, "protect", callID("protect", data, authenticatedData), func(g *group.Group) (*wire.MLSMessage, bool, error) {
		m, err := g.Protect(data, authenticatedData)
		return m, err == nil, err
	})
}

// ProtectThen is Protect that stores, in the same unit as the consumed
// generation, a cursor made from the message (see SetCursor): cursor gets
// the message before its unit is stored and returns the cursor to store.
// A consumer of a log records what it will publish atomically with the
// generation the message used, so a crash never makes it publish a message
// it did not record, nor record one it cannot publish again. cursor runs
// with the handle locked: it must not call the handle's methods. If it
// fails, nothing is stored.
func (h *Group) ProtectThen(ctx context.Context, data, authenticatedData []byte, cursor func(*wire.MLSMessage) ([]byte, error)) (*wire.MLSMessage, error) {
	return call(ctx, h, "protect", callID("protect", data, authenticatedData), func(g *group.Group) (*wire.MLSMessage, bool, error) {
		m, err := g.Protect(data, authenticatedData)
		if err != nil {
			return nil, false, err
		}
		c, err := cursor(m)
		if err == nil && len(c) > MaxCursorLen {
			err = fmt.Errorf("engine: cursor of %d bytes, more than MaxCursorLen (%d)", len(c), MaxCursorLen)
		}
		if err != nil {
			return nil, false, err
		}
		h.nextCursor, h.cursorPending = bytes.Clone(c), true
		return m, true, nil
	})
}

// GroupInfo returns a GroupInfo of the current epoch signed by this member
// (§12.4.3), by default with the external_pub extension for external joins.
func (h *Group) GroupInfo(opts *group.GroupInfoOptions) (*wire.MLSMessage, error) {
	return call(context.Background(), h, "group info", callID("group info"), func(g *group.Group) (*wire.MLSMessage, bool, error) {
		m, err := g.GroupInfo(opts)
		return m, err == nil, err
	})
}

func binary32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func binary64(v uint64) []byte { return append(binary32(uint32(v>>32)), binary32(uint32(v))...) }

// ExportSecret is MLS-Exporter(label, context, length) of the current
// epoch (§8.5).
func (h *Group) ExportSecret(label string, context []byte, length int) (secret.Secret, error) {
	var s secret.Secret
	var err error
	if herr := h.read(func(g *group.Group) { s, err = g.ExportSecret(label, context, length) }); herr != nil {
		return secret.Secret{}, herr
	}
	return s, err
}

// GroupID returns the group's id.
func (h *Group) GroupID() []byte { return append([]byte{}, h.id...) }

// Epoch returns the current epoch.
func (h *Group) Epoch() (e uint64) {
	h.read(func(g *group.Group) { e = g.Epoch() })
	return e
}

// EpochAuthenticator returns the current epoch's epoch_authenticator
// (§8.7).
func (h *Group) EpochAuthenticator() (s secret.Secret) {
	h.read(func(g *group.Group) { s = g.EpochAuthenticator() })
	return s
}

// GroupContext returns a copy of the current GroupContext (§8.1).
func (h *Group) GroupContext() (gc *wire.GroupContext) {
	h.read(func(g *group.Group) { gc = g.GroupContext() })
	return gc
}

// Members lists the members in leaf order.
func (h *Group) Members() (ms []group.Member) {
	h.read(func(g *group.Group) { ms = g.Members() })
	return ms
}

// OwnLeafIndex returns the member's leaf index.
func (h *Group) OwnLeafIndex() (l treemath.LeafIndex) {
	h.read(func(g *group.Group) { l = g.OwnLeafIndex() })
	return l
}

// Status reports whether the member is active, was removed, or the group
// was reinitialized.
func (h *Group) Status() (s group.Status) {
	h.read(func(g *group.Group) { s = g.Status() })
	return s
}

// Active reports whether the member can still send and process handshake
// messages.
func (h *Group) Active() (a bool) {
	h.read(func(g *group.Group) { a = g.Active() })
	return a
}

// HasPendingCommit reports whether a commit of this member awaits merging.
func (h *Group) HasPendingCommit() (p bool) {
	h.read(func(g *group.Group) { p = g.HasPendingCommit() })
	return p
}

// PendingProposals returns the proposals queued in this epoch.
func (h *Group) PendingProposals() (qs []group.QueuedProposal) {
	h.read(func(g *group.Group) { qs = g.PendingProposals() })
	return qs
}

// RatchetTreeBytes returns the encoded ratchet tree, for joiners that get
// it out of band (§12.4.3.3).
func (h *Group) RatchetTreeBytes() (b []byte) {
	h.read(func(g *group.Group) { b = g.RatchetTreeBytes() })
	return b
}

// Suite returns the group's cipher suite.
func (h *Group) Suite() (s *ciphersuite.Suite) {
	h.read(func(g *group.Group) { s = g.Suite() })
	return s
}
