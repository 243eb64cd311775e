// Package welcome opens a Welcome message for a new member (RFC 9420
// §12.4.3.1) up to the decrypted GroupSecrets and a GroupInfo whose
// signature and confirmation tag are verified.
//
// Open takes the Welcome, the member's KeyPackage with its init private key,
// a resolver for the PSKs the Welcome names, and a way to find the signer's
// signature key (the group layer reads it from the ratchet tree; the tree is
// not validated here). It returns the decrypted GroupInfo, the optional path
// secret, and the new epoch's key schedule. Building the member's view of the
// tree from the GroupInfo is the group layer's job.
//
// Open never panics on input and changes nothing outside its result: a
// Welcome that fails any check is simply rejected with a typed error.
package welcome

import (
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// Errors a caller can branch on with errors.Is.
var (
	// ErrNotForUs: no EncryptedGroupSecrets names the KeyPackage's reference.
	ErrNotForUs = errors.New("welcome: no group secrets for this key package")
	// ErrCipherSuiteMismatch: the Welcome, KeyPackage or GroupContext
	// disagree on the cipher suite.
	ErrCipherSuiteMismatch = errors.New("welcome: cipher suite mismatch")
	// ErrDecryption: the group secrets or the group info did not decrypt.
	ErrDecryption = errors.New("welcome: decryption failed")
	// ErrUnknownPSK: the resolver does not know a PSK the Welcome names.
	ErrUnknownPSK = errors.New("welcome: unknown pre-shared key")
	// ErrBadSignature: the GroupInfo signature does not verify.
	ErrBadSignature = errors.New("welcome: bad GroupInfo signature")
	// ErrBadConfirmationTag: the GroupInfo's confirmation tag does not match
	// the key schedule derived from the joiner secret and PSKs.
	ErrBadConfirmationTag = errors.New("welcome: bad confirmation tag")
	// ErrMalformed: a decrypted structure does not decode (it also matches
	// codec.ErrMalformed).
	ErrMalformed = errors.New("welcome: malformed content")
)

// PSKResolver returns the PSK an id names (Open neither keeps nor clears
// it), or an error (wrapping
// ErrUnknownPSK when it simply does not have it). External PSKs come from the
// application; resumption PSKs from the stored resumption_psk of the named
// group and epoch (§8.6).
type PSKResolver func(id *wire.PreSharedKeyID) (secret.Secret, error)

// SignerKey returns the signature public key of the GroupInfo's signer, which
// the group layer finds at leaf gi.Signer of the ratchet tree (from the
// ratchet_tree extension or out of band).
type SignerKey func(gi *wire.GroupInfo) ([]byte, error)

// Joined is the result of opening a Welcome. The caller owns Epoch and
// PathSecret and clears them when the protocol deletes them.
type Joined struct {
	Suite      *ciphersuite.Suite
	GroupInfo  *wire.GroupInfo
	PathSecret secret.Secret         // empty if the Welcome carried none
	PSKs       []wire.PreSharedKeyID // the PSKs that were injected
	Epoch      *keyschedule.Epoch    // the key schedule of GroupInfo's epoch
}

// Open performs the steps of §12.4.3.1 that do not need the ratchet tree.
func Open(w *wire.Welcome, kp *wire.KeyPackage, initKey *ciphersuite.HPKEPrivateKey, psks PSKResolver, signer SignerKey) (*Joined, error) {
	if w == nil || kp == nil || initKey == nil || signer == nil {
		return nil, errors.New("welcome: nil argument")
	}
	// The Welcome's suite must be the KeyPackage's (§12.4.3.1).
	if w.CipherSuite != kp.CipherSuite {
		return nil, ErrCipherSuiteMismatch
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(w.CipherSuite))
	if err != nil {
		return nil, err
	}

	gs, err := decryptGroupSecrets(suite, w, kp, initKey)
	if err != nil {
		return nil, err
	}
	defer gs.JoinerSecret.Clear()

	pskSecret, err := resolvePSKs(suite, gs.PSKs, psks)
	if err != nil {
		return nil, err
	}
	joiner, err := keyschedule.NewJoinerSecret(suite, secret.Copy(gs.JoinerSecret.Bytes()))
	if err != nil {
		pskSecret.Clear()
		return nil, err
	}
	defer joiner.Clear()
	member, err := joiner.WithPSK(pskSecret)
	if err != nil {
		return nil, err
	}
	defer member.Clear()

	gi, err := decryptGroupInfo(suite, member, w.EncryptedGroupInfo)
	if err != nil {
		return nil, err
	}
	if gi.GroupContext.CipherSuite != w.CipherSuite {
		return nil, ErrCipherSuiteMismatch
	}
	// Verify the signature on the GroupInfo with the signer's key (§12.4.3.1).
	pub, err := signer(gi)
	if err != nil {
		return nil, fmt.Errorf("welcome: signer key: %w", err)
	}
	if err := suite.VerifyWithLabel(pub, "GroupInfoTBS", gi.TBS(), gi.Signature); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	// Derive the epoch and check the confirmation tag against the
	// confirmed transcript hash of the GroupContext (§12.4.3.1, §8.1).
	epoch, err := member.Epoch(gi.GroupContext.Bytes())
	if err != nil {
		return nil, err
	}
	if !epoch.VerifyConfirmationTag(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		epoch.Clear()
		return nil, ErrBadConfirmationTag
	}
	j := &Joined{Suite: suite, GroupInfo: gi, PSKs: gs.PSKs, Epoch: epoch}
	if gs.PathSecret != nil {
		j.PathSecret = secret.Copy(gs.PathSecret.PathSecret.Bytes())
		gs.PathSecret.PathSecret.Clear()
	}
	return j, nil
}

// decryptGroupSecrets finds our entry by KeyPackageRef and decrypts it with
// the init key: DecryptWithLabel(init_key, "Welcome", encrypted_group_info,
// kem_output, ciphertext) (§12.4.3.1).
func decryptGroupSecrets(suite *ciphersuite.Suite, w *wire.Welcome, kp *wire.KeyPackage, initKey *ciphersuite.HPKEPrivateKey) (*wire.GroupSecrets, error) {
	ref := suite.MakeKeyPackageRef(kp.Bytes())
	egs := w.Find(ref)
	if egs == nil {
		return nil, ErrNotForUs
	}
	ct := &egs.EncryptedGroupSecrets
	plain, err := suite.DecryptWithLabel(initKey, "Welcome", w.EncryptedGroupInfo, ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: group secrets: %w", ErrDecryption, err)
	}
	// The plaintext holds the joiner secret; the decoder copies what it
	// keeps, so the buffer is scrubbed either way.
	defer clear(plain)
	gs, err := wire.Unmarshal[wire.GroupSecrets](plain)
	if err != nil {
		return nil, fmt.Errorf("%w: GroupSecrets: %w", ErrMalformed, err)
	}
	if gs.JoinerSecret.Len() != suite.HashLen() {
		gs.JoinerSecret.Clear()
		return nil, fmt.Errorf("%w: joiner_secret of %d bytes", ErrMalformed, gs.JoinerSecret.Len())
	}
	return gs, nil
}

// resolvePSKs computes psk_secret over the PSKs in the order the Welcome
// lists them (§8.4).
func resolvePSKs(suite *ciphersuite.Suite, ids []wire.PreSharedKeyID, resolve PSKResolver) (secret.Secret, error) {
	if len(ids) > 0 && resolve == nil {
		return secret.Secret{}, ErrUnknownPSK
	}
	// The resolver's secrets belong to it (an application's external PSK
	// outlives this join), so they are not cleared here.
	in := make([]keyschedule.PSK, 0, len(ids))
	for i := range ids {
		psk, err := resolve(&ids[i])
		if err != nil {
			return secret.Secret{}, fmt.Errorf("welcome: psk %d: %w", i, err)
		}
		id, err := codec.Marshal(&ids[i])
		if err != nil {
			return secret.Secret{}, err
		}
		in = append(in, keyschedule.PSK{ID: id, Secret: psk})
	}
	return keyschedule.PSKSecret(suite, in)
}

// decryptGroupInfo opens encrypted_group_info with the welcome key and nonce
// (§12.4.3.1; the AAD is empty).
func decryptGroupInfo(suite *ciphersuite.Suite, member *keyschedule.MemberSecret, encrypted []byte) (*wire.GroupInfo, error) {
	ws, err := member.WelcomeSecret()
	if err != nil {
		return nil, err
	}
	defer ws.Clear()
	key, nonce, err := ws.KeyNonce()
	if err != nil {
		return nil, err
	}
	defer key.Clear()
	defer nonce.Clear()
	plain, err := suite.Open(key.Bytes(), nonce.Bytes(), nil, encrypted)
	if err != nil {
		return nil, fmt.Errorf("%w: group info: %w", ErrDecryption, err)
	}
	gi, err := wire.Unmarshal[wire.GroupInfo](plain)
	if err != nil {
		return nil, fmt.Errorf("%w: GroupInfo: %w", ErrMalformed, err)
	}
	return gi, nil
}
