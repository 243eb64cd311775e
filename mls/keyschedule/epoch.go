package keyschedule

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// Epoch holds the secrets derived from one epoch_secret (§8, Table 4). The
// epoch_secret itself is not kept.
type Epoch struct {
	suite              *ciphersuite.Suite
	senderDataSecret   secret.Secret
	encryptionSecret   secret.Secret
	exporterSecret     secret.Secret
	externalSecret     secret.Secret
	confirmationKey    secret.Secret
	membershipKey      secret.Secret
	resumptionPSK      secret.Secret
	epochAuthenticator secret.Secret
	initSecret         secret.Secret
}

func (e *Epoch) valid() bool { return e != nil && e.suite != nil }

// get returns a copy of the secret f selects, or an empty secret for a nil
// or cleared Epoch.
func (e *Epoch) get(f func(*Epoch) *secret.Secret) secret.Secret {
	if !e.valid() {
		return secret.Secret{}
	}
	return secret.Copy(f(e).Bytes())
}

// Suite returns the epoch's cipher suite (nil after Clear).
func (e *Epoch) Suite() *ciphersuite.Suite {
	if e == nil {
		return nil
	}
	return e.suite
}

// SenderDataSecret returns a copy of sender_data_secret, which protects the
// SenderData of PrivateMessages (§6.3.2). SenderDataKeyNonce uses it
// without copying.
func (e *Epoch) SenderDataSecret() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.senderDataSecret })
}

// EncryptionSecret returns a copy of encryption_secret, the root of the
// secret tree (§9). Prefer TakeEncryptionSecret, which leaves no copy in
// the Epoch.
func (e *Epoch) EncryptionSecret() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.encryptionSecret })
}

// TakeEncryptionSecret moves encryption_secret out of the Epoch, which
// forgets it, so that the secret tree built from it is its only holder and
// deleting the tree's root deletes it (§9.2). It returns an empty secret if
// it was already taken.
func (e *Epoch) TakeEncryptionSecret() secret.Secret {
	if !e.valid() {
		return secret.Secret{}
	}
	s := e.encryptionSecret
	e.encryptionSecret = secret.Secret{}
	return s
}

// TakeSenderDataSecret moves sender_data_secret out of the Epoch, as
// TakeEncryptionSecret does encryption_secret: a member keeps it with the
// epoch's secret tree, beyond the epoch's end when it retains the epoch
// for late messages (§15.3).
func (e *Epoch) TakeSenderDataSecret() secret.Secret {
	if !e.valid() {
		return secret.Secret{}
	}
	s := e.senderDataSecret
	e.senderDataSecret = secret.Secret{}
	return s
}

// TakeResumptionPSK moves resumption_psk out of the Epoch: a member keeps
// it beyond the epoch's end, for later resumption PSKs (§8.6).
func (e *Epoch) TakeResumptionPSK() secret.Secret {
	if !e.valid() {
		return secret.Secret{}
	}
	s := e.resumptionPSK
	e.resumptionPSK = secret.Secret{}
	return s
}

// StoredSecrets is the number of secrets Stored returns and RestoreEpoch
// takes.
const StoredSecrets = 6

// Stored returns copies of the secrets a member stores for the rest of
// the epoch, in this order: exporter_secret, external_secret,
// confirmation_key, membership_key, epoch_authenticator, init_secret. The
// others are taken out first (TakeSenderDataSecret, TakeEncryptionSecret,
// TakeResumptionPSK): they outlive the epoch or move into its secret
// tree. The caller owns and clears the copies.
func (e *Epoch) Stored() []secret.Secret {
	out := make([]secret.Secret, 0, StoredSecrets)
	for _, p := range e.stored() {
		out = append(out, e.get(func(*Epoch) *secret.Secret { return p }))
	}
	return out
}

func (e *Epoch) stored() []*secret.Secret {
	return []*secret.Secret{&e.exporterSecret, &e.externalSecret, &e.confirmationKey, &e.membershipKey, &e.epochAuthenticator, &e.initSecret}
}

// RestoreEpoch rebuilds the Epoch a member stored from the secrets Stored
// returned, which it takes (and clears on failure): each must be Nh bytes
// (§8). The Epoch holds no sender_data_secret, encryption_secret or
// resumption_psk.
func RestoreEpoch(suite *ciphersuite.Suite, stored []secret.Secret) (*Epoch, error) {
	e := &Epoch{suite: suite}
	err := error(nil)
	switch {
	case suite == nil:
		err = fmt.Errorf("%w: nil suite", ErrInvalidLength)
	case len(stored) != StoredSecrets:
		err = fmt.Errorf("%w: %d stored secrets, want %d", ErrInvalidLength, len(stored), StoredSecrets)
	}
	for i := range stored {
		if err == nil && stored[i].Len() != suite.HashLen() {
			err = fmt.Errorf("%w: stored secret %d of %d bytes, want %d", ErrInvalidLength, i, stored[i].Len(), suite.HashLen())
		}
	}
	if err != nil {
		for i := range stored {
			stored[i].Clear()
		}
		return nil, err
	}
	for i, p := range e.stored() {
		*p = stored[i]
	}
	return e, nil
}

// ExporterSecret returns a copy of exporter_secret (§8.5). Export derives
// from it without copying.
func (e *Epoch) ExporterSecret() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.exporterSecret })
}

// ExternalSecret returns a copy of external_secret (§8.3). ExternalKeyPair
// derives from it without copying.
func (e *Epoch) ExternalSecret() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.externalSecret })
}

// ConfirmationKey returns a copy of confirmation_key (§8, §6.1).
// ConfirmationTag and VerifyConfirmationTag use it without copying.
func (e *Epoch) ConfirmationKey() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.confirmationKey })
}

// MembershipKey returns a copy of membership_key (§6.2). MembershipTag and
// VerifyMembershipTag use it without copying.
func (e *Epoch) MembershipKey() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.membershipKey })
}

// ResumptionPSK returns a copy of resumption_psk (§8.6), the PSK a later
// epoch or group injects with a resumption PreSharedKeyID naming this
// epoch.
func (e *Epoch) ResumptionPSK() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.resumptionPSK })
}

// EpochAuthenticator returns a copy of epoch_authenticator (§8.7).
func (e *Epoch) EpochAuthenticator() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.epochAuthenticator })
}

// InitSecret returns a copy of init_secret, the init secret of the next
// epoch (§8). NextInitSecret returns it as the next stage.
func (e *Epoch) InitSecret() secret.Secret {
	return e.get(func(e *Epoch) *secret.Secret { return &e.initSecret })
}

// NextInitSecret returns (a copy of) this epoch's init_secret as the first
// stage of the next epoch's key schedule. The Epoch keeps its own copy
// until Clear, so that a rejected Commit does not damage it.
func (e *Epoch) NextInitSecret() (*InitSecret, error) {
	if !e.valid() {
		return nil, ErrCleared
	}
	return &InitSecret{suite: e.suite, s: secret.Copy(e.initSecret.Bytes())}, nil
}

// Export is MLS-Exporter(label, context, length) (§8.5):
//
//	ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported",
//	                Hash(context), length)
//
// length must fit the uint16 of KDFLabel and the KDF's output limit.
func (e *Epoch) Export(label string, context []byte, length int) (secret.Secret, error) {
	if !e.valid() {
		return secret.Secret{}, ErrCleared
	}
	if length < 0 || length > 0xffff {
		return secret.Secret{}, fmt.Errorf("%w: %d", ErrInvalidLength, length)
	}
	derived := secret.New(e.suite.DeriveSecret(e.exporterSecret.Bytes(), label))
	defer derived.Clear()
	out, err := e.suite.ExpandWithLabel(derived.Bytes(), labelExported, e.suite.Hash(context), length)
	if err != nil {
		return secret.Secret{}, err
	}
	return secret.New(out), nil
}

// ExternalKeyPair derives the group's external HPKE key pair (§8):
//
//	external_priv, external_pub = KEM.DeriveKeyPair(external_secret)
//
// Its PublicKey is the external_pub of the GroupInfo's external_pub
// extension (§12.4.3.2).
func (e *Epoch) ExternalKeyPair() (*ciphersuite.HPKEPrivateKey, error) {
	if !e.valid() {
		return nil, ErrCleared
	}
	return e.suite.DeriveKeyPair(e.externalSecret.Bytes())
}

// ExternalInit is the group members' side of external initialization
// (§8.3): it decapsulates kemOutput from an ExternalInit proposal with the
// external private key and returns the init_secret that replaces this
// epoch's init_secret for the next epoch.
func (e *Epoch) ExternalInit(kemOutput []byte) (*InitSecret, error) {
	priv, err := e.ExternalKeyPair()
	if err != nil {
		return nil, err
	}
	return ExternalInitReceiver(e.suite, priv, kemOutput)
}

// ConfirmationTag computes MAC(confirmation_key, confirmed_transcript_hash)
// (§6.1), the confirmation_tag of a Commit and of a GroupInfo.
func (e *Epoch) ConfirmationTag(confirmedTranscriptHash []byte) ([]byte, error) {
	if !e.valid() {
		return nil, ErrCleared
	}
	return e.suite.MAC(e.confirmationKey.Bytes(), confirmedTranscriptHash), nil
}

// VerifyConfirmationTag reports, in constant time, whether tag is the
// confirmation tag of confirmedTranscriptHash (§6.1, §12.4.3.1).
func (e *Epoch) VerifyConfirmationTag(confirmedTranscriptHash, tag []byte) bool {
	if !e.valid() {
		return false
	}
	return e.suite.VerifyMAC(e.confirmationKey.Bytes(), confirmedTranscriptHash, tag)
}

// MembershipTag computes MAC(membership_key, AuthenticatedContentTBM) for a
// PublicMessage sent by a member (§6.2); tbm is the encoded
// AuthenticatedContentTBM.
func (e *Epoch) MembershipTag(tbm []byte) ([]byte, error) {
	if !e.valid() {
		return nil, ErrCleared
	}
	return e.suite.MAC(e.membershipKey.Bytes(), tbm), nil
}

// VerifyMembershipTag reports, in constant time, whether tag is the
// membership tag of the encoded AuthenticatedContentTBM tbm (§6.2).
func (e *Epoch) VerifyMembershipTag(tbm, tag []byte) bool {
	if !e.valid() {
		return false
	}
	return e.suite.VerifyMAC(e.membershipKey.Bytes(), tbm, tag)
}

// SenderDataKeyNonce derives the key and nonce that protect the SenderData
// of a PrivateMessage whose content ciphertext is ciphertext (§6.3.2); see
// the function SenderDataKeyNonce.
func (e *Epoch) SenderDataKeyNonce(ciphertext []byte) (key, nonce secret.Secret, err error) {
	if !e.valid() {
		return secret.Secret{}, secret.Secret{}, ErrCleared
	}
	return senderDataKeyNonce(e.suite, e.senderDataSecret, ciphertext)
}

// Clear deletes every secret the Epoch holds. Methods called afterwards
// return ErrCleared, false or empty secrets.
func (e *Epoch) Clear() {
	if e == nil {
		return
	}
	for _, s := range []*secret.Secret{
		&e.senderDataSecret, &e.encryptionSecret, &e.exporterSecret,
		&e.externalSecret, &e.confirmationKey, &e.membershipKey,
		&e.resumptionPSK, &e.epochAuthenticator, &e.initSecret,
	} {
		s.Clear()
	}
	e.suite = nil
}
