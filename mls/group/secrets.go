package group

import (
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// The current epoch's secrets are a keyschedule.Epoch (§8, Table 4) from
// which the group takes out what does not die with the epoch: the
// sender_data_secret (msgEpoch: it outlives the epoch when MaxPastEpochs
// retains it), the resumption_psk (the group's resumption store, §8.6)
// and the encryption_secret (moved into the epoch's secret tree, §9, its
// only holder). Every secret left dies when the epoch ends (§9.2).

// takeEpoch takes out of a key schedule epoch its sender_data_secret,
// resumption_psk and encryption_secret, each owned by the caller, and
// returns the epoch with the rest.
func takeEpoch(e *keyschedule.Epoch) (s *keyschedule.Epoch, senderData, resumption, encryption secret.Secret) {
	return e, e.TakeSenderDataSecret(), e.TakeResumptionPSK(), e.TakeEncryptionSecret()
}

// epochRecord is the epoch/<e>/secrets record of e
// (persist.EpochSecretsValue).
func epochRecord(e *keyschedule.Epoch) []byte {
	all := e.Stored()
	defer func() {
		for i := range all {
			all[i].Clear()
		}
	}()
	return persist.EpochSecretsValue(all)
}

// openEpochRecord decodes a record written by epochRecord. The secrets
// are copies: nothing refers to b afterwards.
func openEpochRecord(suite *ciphersuite.Suite, b []byte) (*keyschedule.Epoch, error) {
	all, err := persist.OpenEpochSecrets(b, keyschedule.StoredSecrets, suite.HashLen())
	if err != nil {
		return nil, err
	}
	return keyschedule.RestoreEpoch(suite, all)
}

// senderDataSecrets implements framing.EpochSecrets for the sender data
// of one epoch, current or past (§6.3.2); past epochs have no membership
// key (they receive application messages only, which are never public).
type senderDataSecrets struct {
	suite      *ciphersuite.Suite
	senderData secret.Secret
	current    *keyschedule.Epoch // nil for a past epoch
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
