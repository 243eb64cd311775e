package framing

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// signLabel is the SignWithLabel label of FramedContentTBS (§6.1).
const signLabel = "FramedContentTBS"

// EpochSecrets is the part of an epoch's key schedule that message
// protection uses: the membership_key (§6.2) and the sender_data_secret
// (§6.3.2). *keyschedule.Epoch implements it, so a group passes its epoch
// without copying a secret; Secrets implements it over raw secrets.
type EpochSecrets interface {
	// MembershipTag returns MAC(membership_key, tbm), tbm being an encoded
	// AuthenticatedContentTBM.
	MembershipTag(tbm []byte) ([]byte, error)
	// VerifyMembershipTag reports, in constant time, whether tag is
	// MAC(membership_key, tbm).
	VerifyMembershipTag(tbm, tag []byte) bool
	// SenderDataKeyNonce derives sender_data_key and sender_data_nonce from
	// the first KDF.Nh bytes of a content ciphertext. The caller clears
	// them.
	SenderDataKeyNonce(ciphertext []byte) (key, nonce secret.Secret, err error)
}

// Secrets is an EpochSecrets over raw secrets, for callers that hold
// membership_key and sender_data_secret without a keyschedule.Epoch (test
// vectors, a restored epoch). It does not copy or clear them.
type Secrets struct {
	Suite            *ciphersuite.Suite
	MembershipKey    secret.Secret
	SenderDataSecret secret.Secret
}

// MembershipTag implements EpochSecrets.
func (s *Secrets) MembershipTag(tbm []byte) ([]byte, error) {
	if s.Suite == nil || s.MembershipKey.IsZero() {
		return nil, fmt.Errorf("%w: no membership key", ErrNotConfigured)
	}
	return s.Suite.MAC(s.MembershipKey.Bytes(), tbm), nil
}

// VerifyMembershipTag implements EpochSecrets.
func (s *Secrets) VerifyMembershipTag(tbm, tag []byte) bool {
	if s.Suite == nil || s.MembershipKey.IsZero() {
		return false
	}
	return s.Suite.VerifyMAC(s.MembershipKey.Bytes(), tbm, tag)
}

// SenderDataKeyNonce implements EpochSecrets.
func (s *Secrets) SenderDataKeyNonce(ciphertext []byte) (key, nonce secret.Secret, err error) {
	if s.Suite == nil || s.SenderDataSecret.IsZero() {
		return secret.Secret{}, secret.Secret{}, fmt.Errorf("%w: no sender data secret", ErrNotConfigured)
	}
	return keyschedule.SenderDataKeyNonce(s.Suite, s.SenderDataSecret, ciphertext)
}

// Epoch is what protecting and unprotecting the messages of one epoch of
// one group needs. Fields a given operation does not use may be left nil;
// the operation fails with ErrNotConfigured if one it uses is missing. The
// functions it holds are called synchronously; an Epoch is safe for
// concurrent use if they and Rand are (SecretTree is).
type Epoch struct {
	// Suite is the group's cipher suite. Always required.
	Suite *ciphersuite.Suite
	// Context is the epoch's GroupContext. Messages are checked against
	// its group_id and epoch, and it is part of what members and
	// new_member_commit senders sign (§6.1). Required except for signing
	// as an external or new_member_proposal sender.
	Context *wire.GroupContext
	// Secrets gives the membership tag and sender data keys: pass the
	// group's *keyschedule.Epoch. Required for member PublicMessages and
	// for PrivateMessages.
	Secrets EpochSecrets
	// SecretTree gives the content keys of PrivateMessages (§9). Protecting
	// and unprotecting consume generations of its ratchets.
	SecretTree *secrettree.Tree
	// IsMember reports whether leaf holds a member, that is, is a non-blank
	// leaf of the epoch's ratchet tree (§6.3.2). Receiving any message from
	// a member sender requires it; leaves it rejects are ErrSenderNotMember.
	IsMember func(leaf treemath.LeafIndex) bool
	// SignatureKey returns the signature public key that must have signed
	// ac (§6.1): a member's from its LeafNode, an external sender's from
	// the external_senders extension, a new member's from the LeafNode in
	// the Commit's path or the Add's KeyPackage. It is called only after
	// the membership tag or decryption has authenticated the message, and
	// must not modify ac. Required for receiving.
	SignatureKey func(ac *wire.AuthenticatedContent) ([]byte, error)
	// Rand is the source of reuse guards (§6.3.1); crypto/rand.Reader if
	// nil. ECDSA signatures use the system CSPRNG regardless.
	Rand io.Reader
}

func (e *Epoch) rand() io.Reader {
	if e.Rand != nil {
		return e.Rand
	}
	return rand.Reader
}

// checkSuite checks the fields every operation needs: the suite, and the
// context's agreement with it when present.
func (e *Epoch) checkSuite() error {
	if e == nil || e.Suite == nil {
		return fmt.Errorf("%w: no cipher suite", ErrNotConfigured)
	}
	if e.Context != nil && e.Context.CipherSuite != uint16(e.Suite.ID()) {
		return fmt.Errorf("%w: group context suite %#04x, epoch suite %v", ErrNotConfigured, e.Context.CipherSuite, e.Suite.ID())
	}
	return nil
}

// checkReceiver checks the fields every unprotect operation needs.
func (e *Epoch) checkReceiver() error {
	if err := e.checkSuite(); err != nil {
		return err
	}
	switch {
	case e.Context == nil:
		return fmt.Errorf("%w: no group context", ErrNotConfigured)
	case e.SignatureKey == nil:
		return fmt.Errorf("%w: no signature key lookup", ErrNotConfigured)
	case e.IsMember == nil:
		return fmt.Errorf("%w: no member lookup", ErrNotConfigured)
	}
	return nil
}

// checkGroup checks a message's group_id and epoch against the context.
func (e *Epoch) checkGroup(groupID []byte, epoch uint64) error {
	if e.Context == nil {
		return fmt.Errorf("%w: no group context", ErrNotConfigured)
	}
	if !bytes.Equal(groupID, e.Context.GroupID) {
		return ErrWrongGroup
	}
	if epoch != e.Context.Epoch {
		return fmt.Errorf("%w: message epoch %d, group epoch %d", ErrWrongEpoch, epoch, e.Context.Epoch)
	}
	return nil
}

// checkMember rejects a member sender whose leaf holds no member.
func (e *Epoch) checkMember(leaf uint32) error {
	if (e.SecretTree != nil && leaf >= uint32(e.SecretTree.LeafCount())) || !e.IsMember(treemath.LeafIndex(leaf)) {
		return fmt.Errorf("%w: leaf %d", ErrSenderNotMember, leaf)
	}
	return nil
}

// checkContent applies the rules that tie the content type, the sender
// type and the wire format together: every content type has its body,
// application data is never public (§6.2), only members encrypt (§6.3.2),
// and each non-member sender type sends only what §6.1 allows it to.
func checkContent(c *wire.FramedContent, wf wire.WireFormat) error {
	switch c.ContentType {
	case wire.ContentTypeApplication:
	case wire.ContentTypeProposal:
		if c.Proposal == nil {
			return fmt.Errorf("%w: proposal content without a proposal", ErrContentType)
		}
	case wire.ContentTypeCommit:
		if c.Commit == nil {
			return fmt.Errorf("%w: commit content without a commit", ErrContentType)
		}
	default:
		return fmt.Errorf("%w: %v", ErrContentType, c.ContentType)
	}
	switch wf {
	case wire.WireFormatPublicMessage:
		if c.ContentType == wire.ContentTypeApplication {
			return ErrApplicationAsPublic
		}
	case wire.WireFormatPrivateMessage:
		if c.Sender.SenderType != wire.SenderTypeMember {
			return fmt.Errorf("%w: %v sender in a PrivateMessage", ErrInvalidSender, c.Sender.SenderType)
		}
	default:
		return fmt.Errorf("%w: %v", ErrWireFormat, wf)
	}
	switch c.Sender.SenderType {
	case wire.SenderTypeMember:
		return nil
	case wire.SenderTypeExternal:
		if c.ContentType == wire.ContentTypeProposal {
			return nil
		}
	case wire.SenderTypeNewMemberCommit:
		if c.ContentType == wire.ContentTypeCommit {
			return nil
		}
	case wire.SenderTypeNewMemberProposal:
		if c.ContentType == wire.ContentTypeProposal && c.Proposal.ProposalType == wire.ProposalTypeAdd {
			return nil
		}
	default:
		return fmt.Errorf("%w: sender type %v", ErrInvalidSender, c.Sender.SenderType)
	}
	return fmt.Errorf("%w: %v sender cannot send this %v", ErrInvalidSender, c.Sender.SenderType, c.ContentType)
}

// checkAuth checks that a commit carries a confirmation tag of MAC size.
func (e *Epoch) checkAuth(ct wire.ContentType, auth *wire.FramedContentAuthData) error {
	return checkConfirmationTag(e.Suite, ct, auth)
}

func checkConfirmationTag(suite *ciphersuite.Suite, ct wire.ContentType, auth *wire.FramedContentAuthData) error {
	if ct == wire.ContentTypeCommit && len(auth.ConfirmationTag) != suite.HashLen() {
		return ErrConfirmationTag
	}
	return nil
}

// signsContext reports whether the FramedContentTBS of a sender of type t
// includes the GroupContext (§6.1).
func signsContext(t wire.SenderType) bool {
	return t == wire.SenderTypeMember || t == wire.SenderTypeNewMemberCommit
}

// contentSize estimates the encoded size of a FramedContent, so that
// buffers are allocated once.
func contentSize(c *wire.FramedContent) int {
	return len(c.GroupID) + len(c.AuthenticatedData) + len(c.ApplicationData) + 64
}

// contextSize estimates the encoded size of a GroupContext.
func contextSize(gc *wire.GroupContext) int {
	if gc == nil {
		return 0
	}
	n := len(gc.GroupID) + len(gc.TreeHash) + len(gc.ConfirmedTranscriptHash) + 32
	for _, x := range gc.Extensions {
		n += len(x.ExtensionData) + 8
	}
	return n
}

// appendTBS encodes the FramedContentTBS of content sent with wire format
// wf into w.
func (e *Epoch) appendTBS(w *codec.Writer, wf wire.WireFormat, content *wire.FramedContent) {
	tbs := wire.FramedContentTBS{Version: wire.ProtocolVersionMLS10, WireFormat: wf, Content: *content, Context: e.Context}
	tbs.MarshalMLS(w)
}

// Sign signs content for sending with wire format wf (§6.1) and returns
// the AuthenticatedContent, which shares content's slices. Members and
// new_member_commit senders sign the GroupContext too, and their content
// must carry its group_id and epoch.
//
// For a commit, the caller then sets Auth.ConfirmationTag, which depends
// on the signature through the confirmed transcript hash (§8.2), before
// passing the result to ProtectPublic or ProtectPrivate.
func (e *Epoch) Sign(wf wire.WireFormat, content *wire.FramedContent, key *ciphersuite.SigningKey) (*wire.AuthenticatedContent, error) {
	if err := e.checkSuite(); err != nil {
		return nil, err
	}
	if content == nil {
		return nil, fmt.Errorf("%w: nil content", ErrContentType)
	}
	if err := checkContent(content, wf); err != nil {
		return nil, err
	}
	if signsContext(content.Sender.SenderType) {
		if err := e.checkGroup(content.GroupID, content.Epoch); err != nil {
			return nil, err
		}
	}
	w := codec.NewWriter(contentSize(content) + contextSize(e.Context) + 4)
	e.appendTBS(w, wf, content)
	tbs, err := w.Result()
	if err != nil {
		return nil, fmt.Errorf("framing: encoding FramedContentTBS: %w", err)
	}
	sig, err := e.Suite.SignWithLabel(key, signLabel, tbs)
	if err != nil {
		return nil, fmt.Errorf("framing: signing: %w", err)
	}
	return &wire.AuthenticatedContent{
		WireFormat: wf,
		Content:    *content,
		Auth:       wire.FramedContentAuthData{ContentType: content.ContentType, Signature: sig},
	}, nil
}

// Verify checks the signature of ac (§6.1) with the sender's signature
// public key pub, in the epoch of e.Context. Unprotect calls it; it is
// exported for callers that hold an AuthenticatedContent from elsewhere.
// It checks neither the confirmation tag nor the membership tag.
func (e *Epoch) Verify(ac *wire.AuthenticatedContent, pub []byte) error {
	if err := e.checkSuite(); err != nil {
		return err
	}
	if ac == nil {
		return fmt.Errorf("%w: nil content", ErrContentType)
	}
	if signsContext(ac.Content.Sender.SenderType) && e.Context == nil {
		return fmt.Errorf("%w: no group context", ErrNotConfigured)
	}
	w := codec.NewWriter(contentSize(&ac.Content) + contextSize(e.Context) + 4)
	e.appendTBS(w, ac.WireFormat, &ac.Content)
	tbs, err := w.Result()
	if err != nil {
		return fmt.Errorf("framing: encoding FramedContentTBS: %w", err)
	}
	return e.verifyTBS(tbs, ac.Auth.Signature, pub)
}

func (e *Epoch) verifyTBS(tbs, sig, pub []byte) error {
	if err := e.Suite.VerifyWithLabel(pub, signLabel, tbs, sig); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return nil
}

// lookupAndVerify asks the caller for the sender's key and verifies the
// signature over the encoded tbs.
func (e *Epoch) lookupAndVerify(ac *wire.AuthenticatedContent, tbs []byte) error {
	pub, err := e.SignatureKey(ac)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnknownSender, err)
	}
	return e.verifyTBS(tbs, ac.Auth.Signature, pub)
}

// Unprotect authenticates m, a PublicMessage or PrivateMessage of this
// epoch, and returns its AuthenticatedContent with a verified signature.
// For a PrivateMessage it also returns the decrypted SenderData; for a
// PublicMessage the SenderData is nil. See UnprotectPublic and
// UnprotectPrivate.
func (e *Epoch) Unprotect(m *wire.MLSMessage) (*wire.AuthenticatedContent, *wire.SenderData, error) {
	if m == nil {
		return nil, nil, fmt.Errorf("%w: nil message", ErrWireFormat)
	}
	switch {
	case m.WireFormat == wire.WireFormatPublicMessage && m.PublicMessage != nil:
		ac, err := e.UnprotectPublic(m.PublicMessage)
		return ac, nil, err
	case m.WireFormat == wire.WireFormatPrivateMessage && m.PrivateMessage != nil:
		return e.UnprotectPrivate(m.PrivateMessage)
	}
	return nil, nil, fmt.Errorf("%w: %v", ErrWireFormat, m.WireFormat)
}
