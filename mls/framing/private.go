package framing

import (
	"crypto/cipher"
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

const (
	// tagLen is the tag size of every MLS AEAD (§17.1).
	tagLen = 16
	// senderDataLen is the size of an encoded SenderData (§6.3.2):
	//
	//	struct {
	//	    uint32 leaf_index;
	//	    uint32 generation;
	//	    opaque reuse_guard[4];
	//	} SenderData;
	senderDataLen = 12
)

// ratchetFor returns the secret-tree ratchet that protects content of type
// ct (§9): application data uses the application ratchet, proposals and
// commits the handshake ratchet.
func ratchetFor(ct wire.ContentType) (secrettree.RatchetType, error) {
	switch ct {
	case wire.ContentTypeApplication:
		return secrettree.Application, nil
	case wire.ContentTypeProposal, wire.ContentTypeCommit:
		return secrettree.Handshake, nil
	}
	return 0, fmt.Errorf("%w: %v", ErrContentType, ct)
}

// encodeAAD encodes the PrivateContentAAD of a PrivateMessage (§6.3.1).
// Its first sdLen bytes are the SenderDataAAD (§6.3.2): the RFC defines
// the latter as the first three fields of the former.
func encodeAAD(groupID []byte, epoch uint64, ct wire.ContentType, authData []byte) (aad []byte, sdLen int, err error) {
	w := codec.NewWriter(len(groupID) + len(authData) + 17)
	sd := wire.SenderDataAAD{GroupID: groupID, Epoch: epoch, ContentType: ct}
	sd.MarshalMLS(w)
	sdLen = len(w.Bytes())
	w.VarBytes(authData)
	aad, err = w.Result()
	if err != nil {
		return nil, 0, fmt.Errorf("framing: encoding PrivateContentAAD: %w", err)
	}
	return aad, sdLen, nil
}

// newAEAD keys the suite's AEAD and checks the nonce length, so that
// cipher.AEAD never panics on a nonce of the wrong size.
func newAEAD(suite *ciphersuite.Suite, key, nonce []byte) (cipher.AEAD, error) {
	a, err := suite.NewAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("framing: %w", err)
	}
	if len(nonce) != a.NonceSize() || a.Overhead() != tagLen {
		return nil, fmt.Errorf("framing: %w: nonce of %d bytes", ciphersuite.ErrInvalidLength, len(nonce))
	}
	return a, nil
}

// guardedNonce appends to dst a copy of the ratchet nonce with the reuse
// guard XORed into its first four bytes (§6.3.1), and returns the copy; the
// caller clears it. A nonce shorter than the guard is copied unchanged, for
// newAEAD to reject.
func guardedNonce(dst []byte, nonce secret.Secret, guard []byte) []byte {
	n := append(dst, nonce.Bytes()...)
	if len(n) >= 4 {
		for i := range 4 {
			n[i] ^= guard[i]
		}
	}
	return n
}

// checkPrivateContent checks that ac may be sent as a PrivateMessage: it
// was signed for mls_private_message by a member, its content type has its
// body (§6.1, §6.3.2), and a commit carries a confirmation tag of MAC size.
func checkPrivateContent(suite *ciphersuite.Suite, ac *wire.AuthenticatedContent) error {
	if ac == nil {
		return fmt.Errorf("%w: nil content", ErrContentType)
	}
	if ac.WireFormat != wire.WireFormatPrivateMessage {
		return fmt.Errorf("%w: content signed for %v", ErrWireFormat, ac.WireFormat)
	}
	if err := checkContent(&ac.Content, wire.WireFormatPrivateMessage); err != nil {
		return err
	}
	return checkConfirmationTag(suite, ac.Content.ContentType, &ac.Auth)
}

// PrivatePlaintext is a PrivateMessage before encryption (§6.3.1): the
// encoded and padded PrivateMessageContent of one AuthenticatedContent,
// and its PrivateContentAAD. EncodePrivate builds it without a content
// key, so that a sender whose key source hands keys out irrevocably (such
// as secrettree.Tree) takes a key only once nothing but the encryption can
// fail; Seal then encrypts it, once.
type PrivatePlaintext struct {
	suite *ciphersuite.Suite
	ac    *wire.AuthenticatedContent
	pt    []byte // content and padding; encrypted in place by Seal, nil after
	aad   []byte // PrivateContentAAD; its first sdLen bytes are the SenderDataAAD
	sdLen int
	nonce [12]byte // room for the guarded nonce of every RFC 9420 AEAD (§17.1)
}

// EncodePrivate encodes the PrivateMessageContent of ac, signed by a member
// for wire format mls_private_message, followed by padding zero bytes
// (§6.3.1), and the PrivateContentAAD. It rejects what may not be sent as
// a PrivateMessage (ErrWireFormat, ErrContentType, ErrInvalidSender,
// ErrConfirmationTag), a negative padding (ErrPadding), and a ciphertext
// that would not fit its varint length prefix (codec.ErrTooLong). It does
// not check ac's group_id and epoch: Epoch.ProtectPrivate does.
func EncodePrivate(suite *ciphersuite.Suite, ac *wire.AuthenticatedContent, padding int) (*PrivatePlaintext, error) {
	if suite == nil {
		return nil, fmt.Errorf("%w: no cipher suite", ErrNotConfigured)
	}
	if err := checkPrivateContent(suite, ac); err != nil {
		return nil, err
	}
	if padding < 0 || padding > codec.MaxVarint {
		return nil, fmt.Errorf("%w: %d", ErrPadding, padding)
	}
	return encodePrivate(suite, ac, padding)
}

// encodePrivate is EncodePrivate once ac and padding have been checked.
func encodePrivate(suite *ciphersuite.Suite, ac *wire.AuthenticatedContent, padding int) (*PrivatePlaintext, error) {
	c := &ac.Content
	// The plaintext buffer has room for the padding and the tag: it is
	// padded and encrypted in place.
	content := wire.PrivateMessageContent{
		ContentType:     c.ContentType,
		ApplicationData: c.ApplicationData,
		Proposal:        c.Proposal,
		Commit:          c.Commit,
		Auth:            ac.Auth,
	}
	w := codec.NewWriter(len(c.ApplicationData) + len(ac.Auth.Signature) + len(ac.Auth.ConfirmationTag) + 16 + padding + tagLen)
	content.MarshalMLS(w)
	pt, err := w.Result()
	if err != nil {
		return nil, fmt.Errorf("framing: encoding PrivateMessageContent: %w", err)
	}
	aad, sdLen, err := encodeAAD(c.GroupID, c.Epoch, c.ContentType, c.AuthenticatedData)
	if err != nil {
		return nil, err
	}
	p := &PrivatePlaintext{suite: suite, ac: ac, pt: pt, aad: aad, sdLen: sdLen}
	if err := p.Pad(padding); err != nil {
		return nil, err
	}
	return p, nil
}

// Len returns the length of the plaintext: the encoded
// PrivateMessageContent and its padding so far.
func (p *PrivatePlaintext) Len() int {
	if p == nil {
		return 0
	}
	return len(p.pt)
}

// Pad appends n more zero bytes of padding (§6.3.1), for example to round
// Len up to a multiple of a block size. It fails with ErrPadding if n is
// negative, and with codec.ErrTooLong if the ciphertext would not fit its
// varint length prefix.
func (p *PrivatePlaintext) Pad(n int) error {
	if n < 0 || n > codec.MaxVarint {
		return fmt.Errorf("%w: %d", ErrPadding, n)
	}
	if p == nil || p.pt == nil {
		return errSealed
	}
	if len(p.pt)+n+tagLen > codec.MaxVarint {
		return fmt.Errorf("framing: ciphertext: %w", codec.ErrTooLong)
	}
	p.pt = append(p.pt, make([]byte, n)...)
	return nil
}

var errSealed = errors.New("framing: PrivatePlaintext nil or already sealed")

// Seal encrypts p as a PrivateMessage (§6.3) under key and nonce, the
// ratchet_key and ratchet_nonce of generation of the sender's ratchet
// (§9.1): it XORs a fresh reuse guard read from rand (crypto/rand.Reader
// if nil) into a copy of nonce, encrypts the PrivateMessageContent with
// the PrivateContentAAD (§6.3.1), then encrypts the SenderData with the
// SenderDataAAD under the sender data key and nonce that sds derives from
// the ciphertext's first KDF.Nh bytes (§6.3.2). The PrivateMessage shares
// the content's group_id and authenticated_data. It neither keeps nor
// clears key and nonce. p is encrypted in place: Seal works once.
func (p *PrivatePlaintext) Seal(sds EpochSecrets, generation uint32, key, nonce secret.Secret, rand io.Reader) (*wire.PrivateMessage, error) {
	if p == nil || p.pt == nil {
		return nil, errSealed
	}
	if sds == nil {
		return nil, fmt.Errorf("%w: no sender data secret", ErrNotConfigured)
	}
	if rand == nil {
		rand = cryptorand.Reader
	}
	c := &p.ac.Content
	sd := make([]byte, senderDataLen, senderDataLen+tagLen)
	binary.BigEndian.PutUint32(sd[0:], c.Sender.LeafIndex)
	binary.BigEndian.PutUint32(sd[4:], generation)
	if _, err := io.ReadFull(rand, sd[8:12]); err != nil {
		return nil, fmt.Errorf("framing: reading reuse guard: %w", err)
	}
	n := guardedNonce(p.nonce[:0], nonce, sd[8:12])
	defer clear(n)
	a, err := newAEAD(p.suite, key.Bytes(), n)
	if err != nil {
		return nil, err
	}
	ct := a.Seal(p.pt[:0], n, p.pt, p.aad)
	p.pt = nil

	sdKey, sdNonce, err := sds.SenderDataKeyNonce(ct)
	if err != nil {
		return nil, fmt.Errorf("framing: sender data key: %w", err)
	}
	defer sdKey.Clear()
	defer sdNonce.Clear()
	sa, err := newAEAD(p.suite, sdKey.Bytes(), sdNonce.Bytes())
	if err != nil {
		return nil, err
	}
	esd := sa.Seal(sd[:0], sdNonce.Bytes(), sd, p.aad[:p.sdLen])
	return &wire.PrivateMessage{
		GroupID:             c.GroupID,
		Epoch:               c.Epoch,
		ContentType:         c.ContentType,
		AuthenticatedData:   c.AuthenticatedData,
		EncryptedSenderData: esd,
		Ciphertext:          ct,
	}, nil
}

// OpenSenderData decrypts and decodes the SenderData of a received
// PrivateMessage (§6.3.2) under the sender data key and nonce that sds
// derives from the first KDF.Nh bytes of pm's ciphertext. It fails with
// ErrDecryption if the encrypted SenderData or the ciphertext is too short
// or does not decrypt. It checks neither pm's group_id and epoch nor that
// the leaf it names holds a member: the caller does, before taking the
// generation's content key for OpenPrivateContent.
func OpenSenderData(suite *ciphersuite.Suite, sds EpochSecrets, pm *wire.PrivateMessage) (*wire.SenderData, error) {
	switch {
	case suite == nil:
		return nil, fmt.Errorf("%w: no cipher suite", ErrNotConfigured)
	case sds == nil:
		return nil, fmt.Errorf("%w: no sender data secret", ErrNotConfigured)
	case pm == nil:
		return nil, fmt.Errorf("%w: nil message", ErrWireFormat)
	}
	aad, sdLen, err := encodeAAD(pm.GroupID, pm.Epoch, pm.ContentType, nil)
	if err != nil {
		return nil, err
	}
	if len(pm.EncryptedSenderData) != senderDataLen+tagLen {
		return nil, fmt.Errorf("%w: encrypted sender data of %d bytes", ErrDecryption, len(pm.EncryptedSenderData))
	}
	if len(pm.Ciphertext) < tagLen {
		return nil, fmt.Errorf("%w: ciphertext shorter than the tag", ErrDecryption)
	}
	key, nonce, err := sds.SenderDataKeyNonce(pm.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("framing: sender data key: %w", err)
	}
	defer key.Clear()
	defer nonce.Clear()
	a, err := newAEAD(suite, key.Bytes(), nonce.Bytes())
	if err != nil {
		return nil, err
	}
	b, err := a.Open(make([]byte, 0, senderDataLen), nonce.Bytes(), pm.EncryptedSenderData, aad[:sdLen])
	if err != nil {
		return nil, fmt.Errorf("%w: sender data: %w", ErrDecryption, ciphersuite.ErrDecryption)
	}
	sd := &wire.SenderData{
		LeafIndex:  binary.BigEndian.Uint32(b[0:]),
		Generation: binary.BigEndian.Uint32(b[4:]),
	}
	copy(sd.ReuseGuard[:], b[8:12])
	return sd, nil
}

// OpenPrivateContent decrypts the content of a received PrivateMessage
// (§6.3.1) under key and nonce, the ratchet_key and ratchet_nonce of
// generation sd.Generation of the ratchet of the sender sd names (§9.1),
// with sd.ReuseGuard XORed into a copy of nonce. It decodes the
// PrivateMessageContent strictly (padding must be zero: codec.ErrMalformed)
// and returns the AuthenticatedContent, wire format mls_private_message,
// sent by the member at sd.LeafIndex and sharing pm's group_id and
// authenticated_data. It fails with ErrDecryption if the content does not
// decrypt and with ErrConfirmationTag if a commit carries no tag of MAC
// size. It neither keeps nor clears key and nonce, and does not verify
// the signature: see Epoch.Verify.
func OpenPrivateContent(suite *ciphersuite.Suite, pm *wire.PrivateMessage, sd *wire.SenderData, key, nonce secret.Secret) (*wire.AuthenticatedContent, error) {
	switch {
	case suite == nil:
		return nil, fmt.Errorf("%w: no cipher suite", ErrNotConfigured)
	case pm == nil:
		return nil, fmt.Errorf("%w: nil message", ErrWireFormat)
	case sd == nil:
		return nil, fmt.Errorf("%w: no sender data", ErrDecryption)
	case len(pm.Ciphertext) < tagLen:
		return nil, fmt.Errorf("%w: ciphertext shorter than the tag", ErrDecryption)
	}
	aad, _, err := encodeAAD(pm.GroupID, pm.Epoch, pm.ContentType, pm.AuthenticatedData)
	if err != nil {
		return nil, err
	}
	// One buffer holds the plaintext and, after it, the guarded nonce.
	ptLen := len(pm.Ciphertext) - tagLen
	buf := make([]byte, 0, ptLen+nonce.Len())
	n := guardedNonce(buf[ptLen:ptLen], nonce, sd.ReuseGuard[:])
	defer clear(n)
	a, err := newAEAD(suite, key.Bytes(), n)
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(buf[:0:ptLen], n, pm.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: content: %w", ErrDecryption, ciphersuite.ErrDecryption)
	}
	pc, err := wire.UnmarshalPrivateMessageContent(pt, pm.ContentType)
	if err != nil {
		return nil, fmt.Errorf("framing: decrypted content: %w", err)
	}
	ac := &wire.AuthenticatedContent{
		WireFormat: wire.WireFormatPrivateMessage,
		Content: wire.FramedContent{
			GroupID:           pm.GroupID,
			Epoch:             pm.Epoch,
			Sender:            wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: sd.LeafIndex},
			AuthenticatedData: pm.AuthenticatedData,
			ContentType:       pm.ContentType,
			ApplicationData:   pc.ApplicationData,
			Proposal:          pc.Proposal,
			Commit:            pc.Commit,
		},
		Auth: pc.Auth,
	}
	if err := checkPrivateContent(suite, ac); err != nil {
		return nil, err
	}
	return ac, nil
}

func (e *Epoch) checkPrivateKeys() error {
	switch {
	case e.Secrets == nil:
		return fmt.Errorf("%w: no sender data secret", ErrNotConfigured)
	case e.SecretTree == nil:
		return fmt.Errorf("%w: no secret tree", ErrNotConfigured)
	}
	return nil
}

// ProtectPrivate encrypts ac, signed by a member for wire format
// mls_private_message, as a PrivateMessage (§6.3) with padding zero bytes
// of padding after the content. It takes the next generation of the
// sender's handshake ratchet (proposals, commits) or application ratchet
// from e.SecretTree, XORs a fresh reuse guard read from e.Rand into the
// nonce, encrypts the PrivateMessageContent, and then the SenderData under
// a key derived from the ciphertext's first KDF.Nh bytes. The
// PrivateMessage shares ac's group_id and authenticated_data.
func (e *Epoch) ProtectPrivate(ac *wire.AuthenticatedContent, padding int) (*wire.PrivateMessage, error) {
	if err := e.checkSuite(); err != nil {
		return nil, err
	}
	if err := checkPrivateContent(e.Suite, ac); err != nil {
		return nil, err
	}
	c := &ac.Content
	if err := e.checkGroup(c.GroupID, c.Epoch); err != nil {
		return nil, err
	}
	if padding < 0 || padding > codec.MaxVarint {
		return nil, fmt.Errorf("%w: %d", ErrPadding, padding)
	}
	if err := e.checkPrivateKeys(); err != nil {
		return nil, err
	}
	rt, err := ratchetFor(c.ContentType)
	if err != nil {
		return nil, err
	}
	// Encode everything before taking a generation, so that an encoding
	// failure wastes none.
	p, err := encodePrivate(e.Suite, ac, padding)
	if err != nil {
		return nil, err
	}
	kn, err := e.SecretTree.NextKey(treemath.LeafIndex(c.Sender.LeafIndex), rt)
	if err != nil {
		return nil, fmt.Errorf("framing: content key: %w", err)
	}
	defer kn.Clear()
	return p.Seal(e.Secrets, kn.Generation, kn.Key, kn.Nonce, e.rand())
}

// UnprotectPrivate decrypts and authenticates a received PrivateMessage
// (§6.3) and returns its AuthenticatedContent (wire format
// mls_private_message, sender the member at SenderData.leaf_index) and its
// SenderData. The content shares pm's group_id and authenticated_data.
//
// In order, it checks the group_id and epoch against e.Context, decrypts
// the SenderData, checks that its leaf holds a member (leaf count of
// e.SecretTree, then e.IsMember), takes the key of its generation from
// e.SecretTree (which deletes it: a replay fails with an error matching
// secrettree.ErrGenerationConsumed), decrypts and strictly decodes the
// content (padding must be zero), and verifies the signature with the key
// e.SignatureKey returns. A failure after the key was taken still consumes
// it. The confirmation tag of a commit is only checked for size.
func (e *Epoch) UnprotectPrivate(pm *wire.PrivateMessage) (*wire.AuthenticatedContent, *wire.SenderData, error) {
	if err := e.checkReceiver(); err != nil {
		return nil, nil, err
	}
	if err := e.checkPrivateKeys(); err != nil {
		return nil, nil, err
	}
	if pm == nil {
		return nil, nil, fmt.Errorf("%w: nil message", ErrWireFormat)
	}
	if err := e.checkGroup(pm.GroupID, pm.Epoch); err != nil {
		return nil, nil, err
	}
	rt, err := ratchetFor(pm.ContentType)
	if err != nil {
		return nil, nil, err
	}

	// §6.3.2: sender data.
	sd, err := OpenSenderData(e.Suite, e.Secrets, pm)
	if err != nil {
		return nil, nil, err
	}
	if err := e.checkMember(sd.LeafIndex); err != nil {
		return nil, nil, err
	}

	// §6.3.1: content.
	kn, err := e.SecretTree.Key(treemath.LeafIndex(sd.LeafIndex), rt, sd.Generation)
	if err != nil {
		return nil, nil, fmt.Errorf("framing: content key: %w", err)
	}
	defer kn.Clear()
	ac, err := OpenPrivateContent(e.Suite, pm, sd, kn.Key, kn.Nonce)
	if err != nil {
		return nil, nil, err
	}

	// §6.1: signature.
	w := codec.NewWriter(len(pm.Ciphertext) + len(pm.GroupID) + len(pm.AuthenticatedData) + contextSize(e.Context) + 16)
	e.appendTBS(w, wire.WireFormatPrivateMessage, &ac.Content)
	tbs, err := w.Result()
	if err != nil {
		return nil, nil, fmt.Errorf("framing: encoding FramedContentTBS: %w", err)
	}
	if err := e.lookupAndVerify(ac, tbs); err != nil {
		return nil, nil, err
	}
	return ac, sd, nil
}
