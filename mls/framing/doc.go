// Package framing protects and unprotects MLS handshake and application
// messages (RFC 9420 §6): it signs FramedContent (§6.1), encodes it as a
// PublicMessage with a membership tag (§6.2) or encrypts it as a
// PrivateMessage with keys from the secret tree (§6.3, §9), and reverses
// both on receipt. It does no I/O and keeps no state of its own: the secret
// tree the caller supplies is the only thing that changes.
//
// # Using it
//
// Describe the epoch once, with the group's key schedule epoch (which
// implements EpochSecrets), its secret tree and lookups into its ratchet
// tree:
//
//	fe := &framing.Epoch{
//	    Suite:        suite,
//	    Context:      &groupContext,
//	    Secrets:      epoch, // *keyschedule.Epoch
//	    SecretTree:   tree,  // *secrettree.Tree
//	    IsMember:     func(l treemath.LeafIndex) bool { ... }, // non-blank leaf
//	    SignatureKey: func(ac *wire.AuthenticatedContent) ([]byte, error) { ... },
//	}
//
// To send, sign the content and protect it; for a commit, set
// ac.Auth.ConfirmationTag between the two steps, since the tag depends on
// the signature:
//
//	ac, err := fe.Sign(wire.WireFormatPrivateMessage, &content, signingKey)
//	pm, err := fe.ProtectPrivate(ac, padding)
//	b, err := wire.Marshal(wire.WrapPrivateMessage(pm))
//
// To receive, decode the MLSMessage and unprotect it. The result is
// authenticated: the membership tag or AEAD has been checked, and so has the
// signature, under the key SignatureKey returned for the sender the message
// names:
//
//	m, err := wire.UnmarshalMLSMessage(b)
//	ac, senderData, err := fe.Unprotect(m) // senderData is nil for a PublicMessage
//
// UnprotectPublic and UnprotectPrivate do the same for one wire format, and
// Verify checks the signature of an AuthenticatedContent on its own. All
// seven cipher suites of RFC 9420 are supported. Without a
// *keyschedule.Epoch, Secrets wraps a raw membership_key and
// sender_data_secret.
//
// # What is checked, and what is not
//
// Unprotecting checks the group_id and epoch against Context (ErrWrongGroup,
// ErrWrongEpoch), the §6.1 pairing of sender type and content
// (ErrInvalidSender), that application data is never public
// (ErrApplicationAsPublic), that a member sender's leaf is a member
// (ErrSenderNotMember), the membership tag (ErrBadMembershipTag), decryption
// (ErrDecryption), the content's strict decoding including zero padding
// (codec.ErrMalformed), that a commit carries a confirmation tag of the
// right size (ErrConfirmationTag), and the signature (ErrBadSignature).
// Errors of the secret tree pass through: a replayed PrivateMessage fails
// with secrettree.ErrGenerationConsumed. Every error is a sentinel matched
// with errors.Is; none carries secret bytes, and no input makes the package
// panic. Protecting applies the same rules to what is sent.
//
// Left to the caller, who has the state they need: verifying a commit's
// confirmation tag, choosing which proposal types external senders may send,
// and finding the signature keys. Messages of an earlier epoch are
// unprotected with an Epoch describing that epoch.
//
// A content key taken from the secret tree is gone even if the message then
// fails to decrypt or verify, because secrettree.Tree.Key hands each key out
// once. Getting that far needs a valid encrypted SenderData, which only
// holders of the epoch's sender_data_secret can produce.
//
// # Other key sources
//
// Epoch takes content keys from a secrettree.Tree. A caller with its own
// secret tree, for example one that must take a key back if the message is
// rejected, uses the §6.3 functions underneath, which take the content key
// and nonce as arguments: EncodePrivate and PrivatePlaintext.Seal to send;
// OpenSenderData, then OpenPrivateContent with the key of the generation
// the SenderData names, then Epoch.Verify, to receive.
package framing
