package framing

import (
	"crypto/cipher"
	"encoding/binary"
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
func (e *Epoch) newAEAD(key, nonce secret.Secret) (cipher.AEAD, error) {
	a, err := e.Suite.NewAEAD(key.Bytes())
	if err != nil {
		return nil, fmt.Errorf("framing: %w", err)
	}
	if nonce.Len() != a.NonceSize() || a.Overhead() != tagLen {
		return nil, fmt.Errorf("framing: %w: nonce of %d bytes", ciphersuite.ErrInvalidLength, nonce.Len())
	}
	return a, nil
}

// applyReuseGuard XORs the reuse guard into the first four bytes of the
// ratchet nonce (§6.3.1). The nonce is the caller's own copy.
func applyReuseGuard(nonce secret.Secret, guard []byte) {
	n := nonce.Bytes()
	for i := range 4 {
		n[i] ^= guard[i]
	}
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
	if ac == nil {
		return nil, fmt.Errorf("%w: nil content", ErrContentType)
	}
	if ac.WireFormat != wire.WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: content signed for %v", ErrWireFormat, ac.WireFormat)
	}
	c := &ac.Content
	if err := checkContent(c, wire.WireFormatPrivateMessage); err != nil {
		return nil, err
	}
	if err := e.checkAuth(c.ContentType, &ac.Auth); err != nil {
		return nil, err
	}
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
	// failure wastes none. The plaintext buffer has room for the tag: it
	// is encrypted in place.
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
	if len(pt)+padding+tagLen > codec.MaxVarint {
		return nil, fmt.Errorf("framing: ciphertext: %w", codec.ErrTooLong)
	}
	pt = append(pt, make([]byte, padding)...)
	aad, sdLen, err := encodeAAD(c.GroupID, c.Epoch, c.ContentType, c.AuthenticatedData)
	if err != nil {
		return nil, err
	}

	kn, err := e.SecretTree.NextKey(treemath.LeafIndex(c.Sender.LeafIndex), rt)
	if err != nil {
		return nil, fmt.Errorf("framing: content key: %w", err)
	}
	defer kn.Clear()
	sd := make([]byte, senderDataLen, senderDataLen+tagLen)
	binary.BigEndian.PutUint32(sd[0:], c.Sender.LeafIndex)
	binary.BigEndian.PutUint32(sd[4:], kn.Generation)
	if _, err := io.ReadFull(e.rand(), sd[8:12]); err != nil {
		return nil, fmt.Errorf("framing: reading reuse guard: %w", err)
	}
	applyReuseGuard(kn.Nonce, sd[8:12])
	a, err := e.newAEAD(kn.Key, kn.Nonce)
	if err != nil {
		return nil, err
	}
	ct := a.Seal(pt[:0], kn.Nonce.Bytes(), pt, aad)

	sdKey, sdNonce, err := e.Secrets.SenderDataKeyNonce(ct)
	if err != nil {
		return nil, fmt.Errorf("framing: sender data key: %w", err)
	}
	defer sdKey.Clear()
	defer sdNonce.Clear()
	sa, err := e.newAEAD(sdKey, sdNonce)
	if err != nil {
		return nil, err
	}
	esd := sa.Seal(sd[:0], sdNonce.Bytes(), sd, aad[:sdLen])
	return &wire.PrivateMessage{
		GroupID:             c.GroupID,
		Epoch:               c.Epoch,
		ContentType:         c.ContentType,
		AuthenticatedData:   c.AuthenticatedData,
		EncryptedSenderData: esd,
		Ciphertext:          ct,
	}, nil
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
	aad, sdLen, err := encodeAAD(pm.GroupID, pm.Epoch, pm.ContentType, pm.AuthenticatedData)
	if err != nil {
		return nil, nil, err
	}
	if len(pm.EncryptedSenderData) != senderDataLen+tagLen {
		return nil, nil, fmt.Errorf("%w: encrypted sender data of %d bytes", ErrDecryption, len(pm.EncryptedSenderData))
	}
	if len(pm.Ciphertext) < tagLen {
		return nil, nil, fmt.Errorf("%w: ciphertext shorter than the tag", ErrDecryption)
	}

	// §6.3.2: sender data.
	sd, err := e.openSenderData(pm, aad[:sdLen])
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
	applyReuseGuard(kn.Nonce, sd.ReuseGuard[:])
	a, err := e.newAEAD(kn.Key, kn.Nonce)
	if err != nil {
		return nil, nil, err
	}
	pt, err := a.Open(make([]byte, 0, len(pm.Ciphertext)-tagLen), kn.Nonce.Bytes(), pm.Ciphertext, aad)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: content: %w", ErrDecryption, ciphersuite.ErrDecryption)
	}
	pc, err := wire.UnmarshalPrivateMessageContent(pt, pm.ContentType)
	if err != nil {
		return nil, nil, fmt.Errorf("framing: decrypted content: %w", err)
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
	if err := checkContent(&ac.Content, wire.WireFormatPrivateMessage); err != nil {
		return nil, nil, err
	}
	if err := e.checkAuth(ac.Content.ContentType, &ac.Auth); err != nil {
		return nil, nil, err
	}

	// §6.1: signature.
	w := codec.NewWriter(len(pt) + len(pm.GroupID) + len(pm.AuthenticatedData) + contextSize(e.Context) + 32)
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

// openSenderData decrypts and decodes the SenderData of pm (§6.3.2).
func (e *Epoch) openSenderData(pm *wire.PrivateMessage, aad []byte) (*wire.SenderData, error) {
	key, nonce, err := e.Secrets.SenderDataKeyNonce(pm.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("framing: sender data key: %w", err)
	}
	defer key.Clear()
	defer nonce.Clear()
	a, err := e.newAEAD(key, nonce)
	if err != nil {
		return nil, err
	}
	b, err := a.Open(make([]byte, 0, senderDataLen), nonce.Bytes(), pm.EncryptedSenderData, aad)
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
