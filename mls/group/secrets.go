package group

import (
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// epochSecrets holds the secrets of the current epoch that the group keeps
// after the key schedule (§8, Table 4) has run, as raw secrets so that they
// can be stored and restored: keyschedule.Epoch cannot be rebuilt from
// stored bytes. The encryption_secret is not here: it is moved into the
// epoch's secret tree (§9), its only holder. The sender_data_secret is
// kept separately (pastEpoch, msgEpoch) because it outlives the epoch when
// MaxPastEpochs retains it.
//
// Every secret here dies when the epoch ends (§9.2); the resumption_psk
// survives in the group's resumption store (§8.6).
type epochSecrets struct {
	suite         *ciphersuite.Suite
	exporter      secret.Secret
	external      secret.Secret
	confirmation  secret.Secret
	membership    secret.Secret
	authenticator secret.Secret
	init          secret.Secret
}

// takeEpoch moves the secrets out of a key schedule epoch and clears it. It
// returns the epoch's secrets, its sender_data_secret, its resumption_psk
// and its encryption_secret, each owned by the caller.
func takeEpoch(e *keyschedule.Epoch) (s *epochSecrets, senderData, resumption, encryption secret.Secret) {
	s = &epochSecrets{
		suite:         e.Suite(),
		exporter:      e.ExporterSecret(),
		external:      e.ExternalSecret(),
		confirmation:  e.ConfirmationKey(),
		membership:    e.MembershipKey(),
		authenticator: e.EpochAuthenticator(),
		init:          e.InitSecret(),
	}
	senderData = e.SenderDataSecret()
	resumption = e.ResumptionPSK()
	encryption = e.TakeEncryptionSecret()
	e.Clear()
	return s, senderData, resumption, encryption
}

// all lists the secrets in their record order.
func (s *epochSecrets) all() []*secret.Secret {
	return []*secret.Secret{&s.exporter, &s.external, &s.confirmation, &s.membership, &s.authenticator, &s.init}
}

// clear deletes every secret (§9.2).
func (s *epochSecrets) clear() {
	if s == nil {
		return
	}
	for _, p := range s.all() {
		p.Clear()
	}
}

// confirmationTag is MAC(confirmation_key, confirmed_transcript_hash) (§6.1).
func (s *epochSecrets) confirmationTag(cth []byte) ([]byte, error) {
	return keyschedule.ConfirmationTag(s.suite, s.confirmation, cth)
}

// verifyConfirmationTag checks a confirmation tag in constant time (§6.1).
func (s *epochSecrets) verifyConfirmationTag(cth, tag []byte) bool {
	return keyschedule.VerifyConfirmationTag(s.suite, s.confirmation, cth, tag)
}

// MembershipTag implements framing.EpochSecrets (§6.2).
func (s *epochSecrets) MembershipTag(tbm []byte) ([]byte, error) {
	if s.membership.IsZero() {
		return nil, fmt.Errorf("%w: no membership key", ErrInactive)
	}
	return s.suite.MAC(s.membership.Bytes(), tbm), nil
}

// VerifyMembershipTag implements framing.EpochSecrets (§6.2).
func (s *epochSecrets) VerifyMembershipTag(tbm, tag []byte) bool {
	if s.membership.IsZero() {
		return false
	}
	return s.suite.VerifyMAC(s.membership.Bytes(), tbm, tag)
}

// export is MLS-Exporter(label, context, length) (§8.5):
//
//	ExpandWithLabel(DeriveSecret(exporter_secret, label), "exported",
//	                Hash(context), length)
func (s *epochSecrets) export(label string, context []byte, length int) (secret.Secret, error) {
	if length < 0 || length > 0xffff {
		return secret.Secret{}, fmt.Errorf("%w: exporter length %d", ErrInvalidArgument, length)
	}
	derived := secret.New(s.suite.DeriveSecret(s.exporter.Bytes(), label))
	defer derived.Clear()
	out, err := s.suite.ExpandWithLabel(derived.Bytes(), "exported", s.suite.Hash(context), length)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("%w: %w", ErrInvalidArgument, err)
	}
	return secret.New(out), nil
}

// nextInit returns a copy of init_secret as the first stage of the next
// epoch's key schedule (§8).
func (s *epochSecrets) nextInit() (*keyschedule.InitSecret, error) {
	return keyschedule.NewInitSecret(s.suite, secret.Copy(s.init.Bytes()))
}

// externalKeyPair derives external_priv, external_pub =
// KEM.DeriveKeyPair(external_secret) (§8.3).
func (s *epochSecrets) externalKeyPair() (*ciphersuite.HPKEPrivateKey, error) {
	return s.suite.DeriveKeyPair(s.external.Bytes())
}

// externalInit is the members' side of external initialization (§8.3).
func (s *epochSecrets) externalInit(kemOutput []byte) (*keyschedule.InitSecret, error) {
	priv, err := s.externalKeyPair()
	if err != nil {
		return nil, err
	}
	return keyschedule.ExternalInitReceiver(s.suite, priv, kemOutput)
}

// marshal encodes the secrets as the epoch/<e>/secrets record, a bin of
// Nh bytes each, in the order of all:
//
//	[epochSecretsVersion, bin exporter, bin external, bin confirmation,
//	 bin membership, bin authenticator, bin init]
func (s *epochSecrets) marshal() []byte {
	all := s.all()
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(1 + len(all))
		e.Uint(epochSecretsVersion)
		for _, p := range all {
			e.Bin(p.Bytes())
		}
	})
}

// unmarshalEpochSecrets decodes a record written by marshal. The secrets
// are copies: nothing refers to b afterwards.
func unmarshalEpochSecrets(suite *ciphersuite.Suite, b []byte) (*epochSecrets, error) {
	s := &epochSecrets{suite: suite}
	all := s.all()
	d := persist.NewDecoder(b)
	d.Open(epochSecretsVersion, len(all))
	for _, p := range all {
		*p = d.Secret(suite.HashLen())
	}
	if err := d.Finish(); err != nil {
		s.clear()
		return nil, corrupt("epoch secrets", err)
	}
	return s, nil
}

// senderDataSecrets implements framing.EpochSecrets for the sender data
// of one epoch, current or past (§6.3.2); past epochs have no membership
// key (they receive application messages only, which are never public).
type senderDataSecrets struct {
	suite      *ciphersuite.Suite
	senderData secret.Secret
	current    *epochSecrets // nil for a past epoch
}

// MembershipTag implements framing.EpochSecrets.
func (s *senderDataSecrets) MembershipTag(tbm []byte) ([]byte, error) {
	if s.current == nil {
		return nil, fmt.Errorf("%w: no membership key for a past epoch", ErrWrongEpoch)
	}
	return s.current.MembershipTag(tbm)
}

// VerifyMembershipTag implements framing.EpochSecrets.
func (s *senderDataSecrets) VerifyMembershipTag(tbm, tag []byte) bool {
	return s.current != nil && s.current.VerifyMembershipTag(tbm, tag)
}

// SenderDataKeyNonce implements framing.EpochSecrets (§6.3.2).
func (s *senderDataSecrets) SenderDataKeyNonce(ciphertext []byte) (key, nonce secret.Secret, err error) {
	if s.senderData.IsZero() {
		return secret.Secret{}, secret.Secret{}, fmt.Errorf("%w: no sender data secret", ErrWrongEpoch)
	}
	return keyschedule.SenderDataKeyNonce(s.suite, s.senderData, ciphertext)
}
