package group

import (
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/ratchettree"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/mlsengine/mlsengine/mls/welcome"
)

// Errors returned by this package. Match them with errors.Is; returned
// errors wrap them with detail that never includes secret bytes, and also
// wrap the error of the package that found the problem (framing,
// ratchettree, treekem, welcome, codec), which errors.Is matches too.
//
// A message rejected with any of these errors has changed nothing in the
// group.
var (
	// ErrWrongGroup: the message is for another group.
	ErrWrongGroup = errors.New("group: message for another group")
	// ErrWrongEpoch: the message is for an epoch the group is not in, or
	// for a past epoch whose secrets are no longer kept, or is a handshake
	// message of a past epoch (§14, §15.3).
	ErrWrongEpoch = errors.New("group: message for another epoch")
	// ErrBadSignature: a signature does not verify (§6.1, §7.3, §10.1,
	// §12.4.3).
	ErrBadSignature = errors.New("group: invalid signature")
	// ErrBadMembershipTag: a member's PublicMessage has a wrong or missing
	// membership_tag (§6.2).
	ErrBadMembershipTag = errors.New("group: invalid membership tag")
	// ErrDecryption: a PrivateMessage does not decrypt (§6.3), for
	// instance because it was tampered with.
	ErrDecryption = errors.New("group: decryption failed")
	// ErrReplay: the key of the message's generation was already used or
	// deleted (§9.2): a replay, or a message older than the out-of-order
	// tolerance.
	ErrReplay = errors.New("group: generation already consumed or deleted")
	// ErrTooFarAhead: the message's generation is further ahead than the
	// configured maximum forward distance.
	ErrTooFarAhead = errors.New("group: generation too far ahead")
	// ErrSenderNotMember: the sender's leaf is blank (for instance a
	// removed member) or outside the tree.
	ErrSenderNotMember = errors.New("group: sender is not a member")
	// ErrUnauthorizedSender: the sender type may not send this content: a
	// proposal type external senders may not use (§12.1.8), a sender
	// index outside external_senders, an application message that is not
	// from a member.
	ErrUnauthorizedSender = errors.New("group: sender not allowed to send this")
	// ErrMalformed: a message or a structure inside it does not decode or
	// breaks a structural rule. It also matches codec.ErrMalformed.
	ErrMalformed = errors.New("group: malformed message")
	// ErrInvalidProposal: a proposal is invalid on its own (§12.1).
	ErrInvalidProposal = errors.New("group: invalid proposal")
	// ErrInvalidCommit: a commit breaks a rule of §12.2 (proposal list
	// validation) or §12.4 (path, external commit rules). An invalid
	// proposal in a commit matches ErrInvalidProposal too.
	ErrInvalidCommit = errors.New("group: invalid commit")
	// ErrUnknownProposal: a commit references a proposal the group has not
	// received in this epoch (§12.4.2).
	ErrUnknownProposal = errors.New("group: commit references an unknown proposal")
	// ErrBadConfirmationTag: the commit's confirmation tag does not match
	// the new epoch's key schedule (§12.4.2).
	ErrBadConfirmationTag = errors.New("group: invalid confirmation tag")
	// ErrUnknownPSK: a PreSharedKeyID names a PSK the group cannot find
	// (§8.4).
	ErrUnknownPSK = errors.New("group: unknown pre-shared key")
	// ErrInvalidKeyPackage: a KeyPackage fails §10.1 validation.
	ErrInvalidKeyPackage = errors.New("group: invalid key package")
	// ErrKeyPackageExpired: a KeyPackage's lifetime does not cover the
	// current time (§7.3). It matches ErrInvalidKeyPackage too.
	ErrKeyPackageExpired = fmt.Errorf("%w: lifetime does not cover the current time", ErrInvalidKeyPackage)
	// ErrInvalidWelcome: a Welcome cannot be used to join (§12.4.3.1).
	ErrInvalidWelcome = errors.New("group: invalid welcome")
	// ErrInvalidGroupInfo: a GroupInfo cannot be used for an external join
	// (§12.4.3.2).
	ErrInvalidGroupInfo = errors.New("group: invalid group info")
	// ErrInvalidTree: a ratchet tree fails validation (§12.4.3.1) or does
	// not match the tree hash.
	ErrInvalidTree = errors.New("group: invalid ratchet tree")
	// ErrInactive: the group can no longer send or receive handshake
	// messages: this member was removed, or a ReInit was committed (§11.2).
	ErrInactive = errors.New("group: group is not active")
	// ErrPendingCommit: the operation needs no pending commit of this
	// member, and there is one: merge or clear it first.
	ErrPendingCommit = errors.New("group: a pending commit exists")
	// ErrNoPendingCommit: there is no pending commit to merge.
	ErrNoPendingCommit = errors.New("group: no pending commit")
	// ErrPendingProposals: application data cannot be sent while proposals
	// of this epoch are uncommitted (§12.4).
	ErrPendingProposals = errors.New("group: proposals must be committed before sending application data")
	// ErrOwnCommit: a commit sent by this member came back. Merge the
	// pending commit instead of processing it.
	ErrOwnCommit = errors.New("group: commit sent by this member")
	// ErrStaleCommit: a staged or pending commit was built for a state
	// the group is no longer in.
	ErrStaleCommit = errors.New("group: commit was staged for another state")
	// ErrUnsupported: the peer or the message uses a capability this
	// member or the group does not support.
	ErrUnsupported = errors.New("group: unsupported")
	// ErrInvalidArgument: a caller error, such as a nil argument or an
	// out-of-range leaf index.
	ErrInvalidArgument = errors.New("group: invalid argument")
	// ErrCorruptState: stored records do not decode into a valid state.
	ErrCorruptState = errors.New("group: corrupt stored state")
)

// mapErr wraps an error of a lower package with the sentinel of this
// package that describes it, so that callers need only this package's
// sentinels; the original error stays matchable.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var s error
	switch {
	case errors.Is(err, ErrWrongGroup), errors.Is(err, ErrWrongEpoch), errors.Is(err, ErrBadSignature),
		errors.Is(err, ErrBadMembershipTag), errors.Is(err, ErrDecryption), errors.Is(err, ErrReplay),
		errors.Is(err, ErrTooFarAhead), errors.Is(err, ErrSenderNotMember), errors.Is(err, ErrMalformed),
		errors.Is(err, ErrUnauthorizedSender), errors.Is(err, ErrInvalidCommit), errors.Is(err, ErrInvalidProposal):
		return err
	case errors.Is(err, framing.ErrWrongGroup):
		s = ErrWrongGroup
	case errors.Is(err, framing.ErrWrongEpoch):
		s = ErrWrongEpoch
	case errors.Is(err, framing.ErrBadMembershipTag):
		s = ErrBadMembershipTag
	case errors.Is(err, framing.ErrBadSignature), errors.Is(err, ciphersuite.ErrInvalidSignature),
		errors.Is(err, ratchettree.ErrBadLeafSignature), errors.Is(err, welcome.ErrBadSignature):
		s = ErrBadSignature
	case errors.Is(err, framing.ErrDecryption), errors.Is(err, ciphersuite.ErrDecryption):
		s = ErrDecryption
	case errors.Is(err, framing.ErrSenderNotMember):
		s = ErrSenderNotMember
	case errors.Is(err, framing.ErrInvalidSender), errors.Is(err, framing.ErrApplicationAsPublic), errors.Is(err, framing.ErrUnknownSender):
		s = ErrUnauthorizedSender
	case errors.Is(err, framing.ErrContentType), errors.Is(err, framing.ErrWireFormat),
		errors.Is(err, framing.ErrConfirmationTag), errors.Is(err, codec.ErrMalformed):
		s = ErrMalformed
	case errors.Is(err, treekem.ErrDecryptPathSecret), errors.Is(err, treekem.ErrNoDecryptionKey):
		s = ErrDecryption
	default:
		return err
	}
	return fmt.Errorf("%w: %w", s, err)
}
