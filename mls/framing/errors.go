package framing

import (
	"errors"
	"fmt"
)

// Errors returned by this package; match them with errors.Is. The returned
// errors wrap them with detail that never includes secret bytes. Errors of
// the packages this one calls are wrapped too, so errors.Is also matches
// codec.ErrMalformed (a malformed decrypted content, wire.ErrBadPadding),
// ciphersuite.ErrInvalidSignature and ciphersuite.ErrDecryption, and the
// secrettree sentinels (ErrGenerationConsumed for a replay,
// ErrTooDistantInFuture, ...).
var (
	// ErrNotConfigured: the Epoch lacks something the operation needs
	// (suite, group context, secrets, secret tree, member or key lookup), or
	// its suite does not match the group context's.
	ErrNotConfigured = errors.New("framing: epoch not configured for this operation")
	// ErrWrongGroup: the message's group_id is not the group's.
	ErrWrongGroup = errors.New("framing: message for another group")
	// ErrWrongEpoch: the message's epoch is not the group's current one.
	ErrWrongEpoch = errors.New("framing: message for another epoch")
	// ErrWireFormat: the message is neither a PublicMessage nor a
	// PrivateMessage, or an AuthenticatedContent's wire format does not
	// match the protection asked for.
	ErrWireFormat = errors.New("framing: wrong wire format")
	// ErrContentType: the content type is not one RFC 9420 defines, its
	// body is missing, or it is not allowed for the sender or wire format.
	ErrContentType = errors.New("framing: content type not allowed")
	// ErrApplicationAsPublic: application data may only be sent as a
	// PrivateMessage (§6.2). It matches ErrContentType.
	ErrApplicationAsPublic = fmt.Errorf("%w: application data in a PublicMessage", ErrContentType)
	// ErrInvalidSender: the sender type is not allowed for the wire format
	// (only members send PrivateMessages, §6.3.2) or for the content (§6.1).
	ErrInvalidSender = errors.New("framing: sender not allowed")
	// ErrSenderNotMember: a member sender's leaf is out of range or blank
	// (§6.3.2).
	ErrSenderNotMember = errors.New("framing: sender leaf is not a member")
	// ErrUnknownSender: the SignatureKey lookup found no key for the sender;
	// the lookup's error is wrapped too.
	ErrUnknownSender = errors.New("framing: no signature key for sender")
	// ErrBadMembershipTag: a member's PublicMessage has a missing or wrong
	// membership_tag (§6.2).
	ErrBadMembershipTag = errors.New("framing: invalid membership tag")
	// ErrBadSignature: the FramedContentTBS signature does not verify
	// (§6.1). It wraps the ciphersuite error (ErrInvalidSignature, or
	// ErrInvalidKey for a malformed public key).
	ErrBadSignature = errors.New("framing: invalid signature")
	// ErrDecryption: encrypted_sender_data or the content ciphertext does
	// not decrypt (§6.3). It wraps ciphersuite.ErrDecryption when the AEAD
	// rejected the input.
	ErrDecryption = errors.New("framing: decryption failed")
	// ErrConfirmationTag: a commit carries no confirmation_tag of KDF.Nh
	// bytes. Whether the tag is correct is for the caller to check.
	ErrConfirmationTag = errors.New("framing: commit without a valid confirmation tag")
	// ErrPadding: a negative padding length was asked for.
	ErrPadding = errors.New("framing: invalid padding length")
)
