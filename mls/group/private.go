package group

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// PrivateMessage protection (§6.3) over the group's own secret tree
// (msgTree). Package framing implements the same over secrettree.Tree,
// which hands out keys irrevocably; here the content key is taken in a
// transaction that the caller commits only once the whole message has been
// accepted, so that a rejected message changes nothing. Signing,
// PublicMessages and signature verification are framing's.

const (
	aeadTagLen    = 16 // every MLS AEAD (§17.1)
	senderDataLen = 12 // uint32 leaf_index, uint32 generation, opaque reuse_guard[4]
)

func ratchetFor(ct wire.ContentType) (int, error) {
	switch ct {
	case wire.ContentTypeApplication:
		return ratchetApplication, nil
	case wire.ContentTypeProposal, wire.ContentTypeCommit:
		return ratchetHandshake, nil
	}
	return 0, fmt.Errorf("%w: content type %v", ErrMalformed, ct)
}

// privateAAD encodes the PrivateContentAAD (§6.3.1); its first sdLen bytes
// are the SenderDataAAD (§6.3.2).
func privateAAD(groupID []byte, epoch uint64, ct wire.ContentType, authData []byte) (aad []byte, sdLen int, err error) {
	w := codec.NewWriter(len(groupID) + len(authData) + 17)
	sd := wire.SenderDataAAD{GroupID: groupID, Epoch: epoch, ContentType: ct}
	sd.MarshalMLS(w)
	sdLen = len(w.Bytes())
	w.VarBytes(authData)
	aad, err = w.Result()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return aad, sdLen, nil
}

func xorGuard(nonce secret.Secret, guard []byte) {
	n := nonce.Bytes()
	for i := range 4 {
		n[i] ^= guard[i]
	}
}

// paddingFor returns how many zero bytes pad a plaintext of n bytes to a
// multiple of block (§6.3.1).
func paddingFor(n, block int) int {
	if block <= 1 {
		return 0
	}
	return (block - n%block) % block
}

// protectPrivate encrypts ac, signed by the member at its sender leaf for
// mls_private_message, under the next generation of that leaf's ratchet
// (§6.3.1) and encrypts the SenderData (§6.3.2).
func protectPrivate(suite *ciphersuite.Suite, ac *wire.AuthenticatedContent, block int, tree *msgTree, sds framing.EpochSecrets, rnd io.Reader) (*wire.PrivateMessage, error) {
	c := &ac.Content
	rt, err := ratchetFor(c.ContentType)
	if err != nil {
		return nil, err
	}
	content := wire.PrivateMessageContent{
		ContentType:     c.ContentType,
		ApplicationData: c.ApplicationData,
		Proposal:        c.Proposal,
		Commit:          c.Commit,
		Auth:            ac.Auth,
	}
	pt, err := codec.Marshal(&content)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if pad := paddingFor(len(pt), block); pad > 0 {
		content.PaddingLength = pad
		if pt, err = codec.Marshal(&content); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
		}
	}
	if len(pt)+aeadTagLen > codec.MaxVarint {
		return nil, fmt.Errorf("%w: message too long", ErrInvalidArgument)
	}
	aad, sdLen, err := privateAAD(c.GroupID, c.Epoch, c.ContentType, c.AuthenticatedData)
	if err != nil {
		return nil, err
	}
	var guard [4]byte
	if _, err := io.ReadFull(rnd, guard[:]); err != nil {
		return nil, fmt.Errorf("group: reading reuse guard: %w", err)
	}
	tk, err := tree.next(treemath.LeafIndex(c.Sender.LeafIndex), rt)
	if err != nil {
		return nil, err
	}
	defer tk.abort() // no-op after commit
	kn := tk.kn
	xorGuard(kn.nonce, guard[:])
	ct, err := suite.Seal(kn.key.Bytes(), kn.nonce.Bytes(), aad, pt)
	if err != nil {
		return nil, err
	}
	sd := make([]byte, senderDataLen)
	binary.BigEndian.PutUint32(sd[0:], c.Sender.LeafIndex)
	binary.BigEndian.PutUint32(sd[4:], kn.gen)
	copy(sd[8:], guard[:])
	sdKey, sdNonce, err := sds.SenderDataKeyNonce(ct)
	if err != nil {
		return nil, err
	}
	defer sdKey.Clear()
	defer sdNonce.Clear()
	esd, err := suite.Seal(sdKey.Bytes(), sdNonce.Bytes(), aad[:sdLen], sd)
	if err != nil {
		return nil, err
	}
	kn.clear()
	tk.commit()
	return &wire.PrivateMessage{
		GroupID:             c.GroupID,
		Epoch:               c.Epoch,
		ContentType:         c.ContentType,
		AuthenticatedData:   c.AuthenticatedData,
		EncryptedSenderData: esd,
		Ciphertext:          ct,
	}, nil
}

// privateEpoch is what unprotecting a PrivateMessage of one epoch needs.
type privateEpoch struct {
	suite    *ciphersuite.Suite
	ctx      *wire.GroupContext
	secrets  framing.EpochSecrets
	tree     *msgTree
	isMember func(leaf uint32) bool
	sigKey   func(leaf uint32) []byte
}

// unprotectPrivate decrypts and authenticates pm (§6.3): sender data,
// membership of the sender's leaf, content key (prepared, not yet taken),
// content, strict decoding, signature. On success the caller commits the
// returned take once it accepts the message, or aborts it; on error nothing
// has changed.
func unprotectPrivate(e *privateEpoch, pm *wire.PrivateMessage) (*wire.AuthenticatedContent, *msgTake, error) {
	if string(pm.GroupID) != string(e.ctx.GroupID) {
		return nil, nil, ErrWrongGroup
	}
	if pm.Epoch != e.ctx.Epoch {
		return nil, nil, ErrWrongEpoch
	}
	rt, err := ratchetFor(pm.ContentType)
	if err != nil {
		return nil, nil, err
	}
	if len(pm.EncryptedSenderData) != senderDataLen+aeadTagLen || len(pm.Ciphertext) < aeadTagLen {
		return nil, nil, fmt.Errorf("%w: ciphertext too short", ErrDecryption)
	}
	aad, sdLen, err := privateAAD(pm.GroupID, pm.Epoch, pm.ContentType, pm.AuthenticatedData)
	if err != nil {
		return nil, nil, err
	}

	// §6.3.2: sender data.
	sdKey, sdNonce, err := e.secrets.SenderDataKeyNonce(pm.Ciphertext)
	if err != nil {
		return nil, nil, err
	}
	sdb, err := e.suite.Open(sdKey.Bytes(), sdNonce.Bytes(), aad[:sdLen], pm.EncryptedSenderData)
	sdKey.Clear()
	sdNonce.Clear()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: sender data: %w", ErrDecryption, err)
	}
	leaf := binary.BigEndian.Uint32(sdb[0:])
	gen := binary.BigEndian.Uint32(sdb[4:])
	if uint64(leaf) >= uint64(e.tree.n) || !e.isMember(leaf) {
		return nil, nil, fmt.Errorf("%w: leaf %d", ErrSenderNotMember, leaf)
	}

	// §6.3.1: content, under the key of the sender's generation.
	tk, err := e.tree.key(treemath.LeafIndex(leaf), rt, gen)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*wire.AuthenticatedContent, *msgTake, error) {
		tk.abort()
		return nil, nil, err
	}
	xorGuard(tk.kn.nonce, sdb[8:12])
	pt, err := e.suite.Open(tk.kn.key.Bytes(), tk.kn.nonce.Bytes(), aad, pm.Ciphertext)
	tk.kn.clear()
	if err != nil {
		return fail(fmt.Errorf("%w: content: %w", ErrDecryption, err))
	}
	pc, err := wire.UnmarshalPrivateMessageContent(pt, pm.ContentType)
	if err != nil {
		return fail(fmt.Errorf("%w: decrypted content: %w", ErrMalformed, err))
	}
	ac := &wire.AuthenticatedContent{
		WireFormat: wire.WireFormatPrivateMessage,
		Content: wire.FramedContent{
			GroupID:           pm.GroupID,
			Epoch:             pm.Epoch,
			Sender:            wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: leaf},
			AuthenticatedData: pm.AuthenticatedData,
			ContentType:       pm.ContentType,
			ApplicationData:   pc.ApplicationData,
			Proposal:          pc.Proposal,
			Commit:            pc.Commit,
		},
		Auth: pc.Auth,
	}
	ac.Auth.ContentType = pm.ContentType
	if pm.ContentType == wire.ContentTypeCommit && len(ac.Auth.ConfirmationTag) != e.suite.HashLen() {
		return fail(fmt.Errorf("%w: confirmation tag of %d bytes", ErrMalformed, len(ac.Auth.ConfirmationTag)))
	}

	// §6.1: signature.
	fe := &framing.Epoch{Suite: e.suite, Context: e.ctx}
	if err := fe.Verify(ac, e.sigKey(leaf)); err != nil {
		return fail(mapErr(err))
	}
	return ac, tk, nil
}
