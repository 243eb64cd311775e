package group

import (
	"fmt"
	"io"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/framing"
	"github.com/mlsengine/mlsengine/mls/treemath"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// PrivateMessage protection (§6.3) over the group's own secret tree
// (msgTree). The encryption is framing's (EncodePrivate, OpenSenderData,
// OpenPrivateContent), which takes the content key from its caller; here
// that key is taken in a transaction that the caller commits only once the
// whole message has been accepted, so that a rejected message changes
// nothing.

func ratchetFor(ct wire.ContentType) (int, error) {
	switch ct {
	case wire.ContentTypeApplication:
		return ratchetApplication, nil
	case wire.ContentTypeProposal, wire.ContentTypeCommit:
		return ratchetHandshake, nil
	}
	return 0, fmt.Errorf("%w: content type %v", ErrMalformed, ct)
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
// (§6.3.1), padded to a multiple of block, and encrypts the SenderData
// (§6.3.2). The generation is used up only if encryption succeeds.
func protectPrivate(suite *ciphersuite.Suite, ac *wire.AuthenticatedContent, block int, tree *msgTree, sds framing.EpochSecrets, rnd io.Reader) (*wire.PrivateMessage, error) {
	c := &ac.Content
	rt, err := ratchetFor(c.ContentType)
	if err != nil {
		return nil, err
	}
	p, err := framing.EncodePrivate(suite, ac, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	if err := p.Pad(paddingFor(p.Len(), block)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	tk, err := tree.next(treemath.LeafIndex(c.Sender.LeafIndex), rt)
	if err != nil {
		return nil, err
	}
	defer tk.abort() // no-op after commit
	pm, err := p.Seal(sds, tk.kn.gen, tk.kn.key, tk.kn.nonce, rnd)
	tk.kn.clear()
	if err != nil {
		return nil, err
	}
	if err := tk.commit(); err != nil {
		return nil, err
	}
	return pm, nil
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

	// §6.3.2: sender data.
	sd, err := framing.OpenSenderData(e.suite, e.secrets, pm)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	leaf := sd.LeafIndex
	if uint64(leaf) >= uint64(e.tree.n) || !e.isMember(leaf) {
		return nil, nil, fmt.Errorf("%w: leaf %d", ErrSenderNotMember, leaf)
	}

	// §6.3.1: content, under the key of the sender's generation.
	tk, err := e.tree.key(treemath.LeafIndex(leaf), rt, sd.Generation)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*wire.AuthenticatedContent, *msgTake, error) {
		tk.abort()
		return nil, nil, mapErr(err)
	}
	ac, err := framing.OpenPrivateContent(e.suite, pm, sd, tk.kn.key, tk.kn.nonce)
	tk.kn.clear()
	if err != nil {
		return fail(err)
	}

	// §6.1: signature.
	fe := &framing.Epoch{Suite: e.suite, Context: e.ctx}
	if err := fe.Verify(ac, e.sigKey(leaf)); err != nil {
		return fail(err)
	}
	return ac, tk, nil
}
