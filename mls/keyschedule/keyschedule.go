// Package keyschedule derives the secrets of an MLS epoch (RFC 9420 §8).
//
// The schedule is typed, one type per stage, each holding its secret
// unexported, and only the derivations the RFC defines exist as methods:
//
//	InitSecret    --Joiner(commit_secret, GroupContext)-->   JoinerSecret
//	JoinerSecret  --WithPSK(psk_secret)-->                    MemberSecret
//	MemberSecret  --WelcomeSecret()-->                        WelcomeSecret (welcome key and nonce)
//	MemberSecret  --Epoch(GroupContext)-->                    Epoch
//	Epoch         --NextInitSecret()-->                       InitSecret of the next epoch
//
// A member processing a Commit starts from the current epoch's
// NextInitSecret (or from ExternalInitReceiver for an external commit); a
// new member starts from the joiner_secret of its GroupSecrets with
// NewJoinerSecret; the creator of a group starts from NewRandomInitSecret.
// PSKSecret computes the psk_secret input (§8.4). GroupContext is passed as
// its encoded bytes, so this package does not depend on the wire format.
//
// An Epoch exposes the secrets of §8 (sender data, encryption, exporter,
// external, confirmation and membership keys, resumption PSK, epoch
// authenticator) and the operations built on them: the exporter (§8.5),
// the external key pair and external init (§8.3), the confirmation tag
// (§6.1, §8.2), the membership tag (§6.2) and the sender data key and nonce
// (§6.3.2). Transcript hashes (§8.2) are plain functions of their inputs.
//
// Ownership: every constructor that takes a secret.Secret takes ownership of
// it; every accessor that returns one returns a fresh copy the caller owns
// and should Clear when done. No derivation modifies or clears its
// receiver, so a Commit that turns out to be invalid leaves the current
// epoch intact; the owner calls Clear on a stage once the protocol deletes
// it (§9.2). Intermediate values (epoch_secret, extracted PSKs, the
// exporter's derived secret) are cleared as soon as they are used. Clearing
// is best effort in Go; see package secret.
//
// Values of this package are not safe for concurrent use with Clear.
package keyschedule

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// Errors returned by this package; all are matched with errors.Is.
var (
	// ErrNilSuite is returned when a nil cipher suite is passed.
	ErrNilSuite = errors.New("keyschedule: nil cipher suite")
	// ErrSecretLength is returned for an input secret whose length is not
	// the KDF.Nh of the suite.
	ErrSecretLength = errors.New("keyschedule: secret length is not KDF.Nh")
	// ErrCleared is returned by a stage that has been cleared (or is nil).
	ErrCleared = errors.New("keyschedule: secret has been cleared")
	// ErrTooManyPSKs is returned when more PSKs are given than the uint16
	// count of PSKLabel can express.
	ErrTooManyPSKs = errors.New("keyschedule: more than 65535 PSKs")
	// ErrInvalidLength is returned for an exporter length outside the
	// uint16 range of KDFLabel.length.
	ErrInvalidLength = errors.New("keyschedule: invalid output length")
)

// Labels of the key schedule (§8, Table 4 "Epoch-Derived Secrets").
const (
	labelJoiner         = "joiner"
	labelWelcome        = "welcome"
	labelEpoch          = "epoch"
	labelSenderData     = "sender data"
	labelEncryption     = "encryption"
	labelExporter       = "exporter"
	labelExternal       = "external"
	labelConfirm        = "confirm"
	labelMembership     = "membership"
	labelResumption     = "resumption"
	labelAuthentication = "authentication"
	labelInit           = "init"
	labelExported       = "exported"
	labelDerivedPSK     = "derived psk"
	labelKey            = "key"
	labelNonce          = "nonce"

	// externalInitContext is the HPKE exporter context of §8.3.
	externalInitContext = "MLS 1.0 external init secret"
)

// checkSecret takes ownership of s for a stage of suite, requiring Nh bytes.
func checkSecret(suite *ciphersuite.Suite, s secret.Secret) error {
	if suite == nil {
		return ErrNilSuite
	}
	if s.Len() != suite.HashLen() {
		return fmt.Errorf("%w: %d bytes, want %d", ErrSecretLength, s.Len(), suite.HashLen())
	}
	return nil
}

// orZero returns s, or the all-zero "0" of §8 when s is empty, as a copy
// the caller clears. A non-empty s must have Nh bytes.
func orZero(suite *ciphersuite.Suite, s secret.Secret) (secret.Secret, error) {
	if s.IsZero() {
		return secret.Zero(suite.HashLen()), nil
	}
	if s.Len() != suite.HashLen() {
		return secret.Secret{}, fmt.Errorf("%w: %d bytes, want %d", ErrSecretLength, s.Len(), suite.HashLen())
	}
	return secret.Copy(s.Bytes()), nil
}

// InitSecret is the init_secret that starts an epoch's key schedule: the
// previous epoch's init_secret, a random one for a new group (§11), or the
// output of external init (§8.3).
type InitSecret struct {
	suite *ciphersuite.Suite
	s     secret.Secret
}

// NewInitSecret wraps an init_secret of KDF.Nh bytes, taking ownership of s.
func NewInitSecret(suite *ciphersuite.Suite, s secret.Secret) (*InitSecret, error) {
	if err := checkSecret(suite, s); err != nil {
		return nil, err
	}
	return &InitSecret{suite: suite, s: s}, nil
}

// NewRandomInitSecret returns a fresh random init_secret of KDF.Nh bytes for
// the first epoch of a new group (§11). A nil rand uses crypto/rand.
func NewRandomInitSecret(suite *ciphersuite.Suite, rand io.Reader) (*InitSecret, error) {
	if suite == nil {
		return nil, ErrNilSuite
	}
	if rand == nil {
		rand = cryptoRand
	}
	b := make([]byte, suite.HashLen())
	if _, err := io.ReadFull(rand, b); err != nil {
		clear(b)
		return nil, fmt.Errorf("keyschedule: reading randomness: %w", err)
	}
	return &InitSecret{suite: suite, s: secret.New(b)}, nil
}

var cryptoRand = rand.Reader

// Joiner derives the joiner_secret of the next epoch (§8):
//
//	joiner_secret = ExpandWithLabel(KDF.Extract(init_secret, commit_secret),
//	                                "joiner", GroupContext_[n], KDF.Nh)
//
// groupContext is the encoded GroupContext of the new epoch. An empty
// commitSecret stands for the all-zero "0" used when a Commit has no path.
// Joiner neither retains nor clears commitSecret or i.
func (i *InitSecret) Joiner(commitSecret secret.Secret, groupContext []byte) (*JoinerSecret, error) {
	if i == nil || i.s.IsZero() {
		return nil, ErrCleared
	}
	commit, err := orZero(i.suite, commitSecret)
	if err != nil {
		return nil, fmt.Errorf("commit_secret: %w", err)
	}
	defer commit.Clear()
	prk := secret.New(i.suite.Extract(i.s.Bytes(), commit.Bytes()))
	defer prk.Clear()
	js, err := i.suite.ExpandWithLabel(prk.Bytes(), labelJoiner, groupContext, i.suite.HashLen())
	if err != nil {
		return nil, err
	}
	return &JoinerSecret{suite: i.suite, s: secret.New(js)}, nil
}

// Clear deletes the init secret.
func (i *InitSecret) Clear() {
	if i != nil {
		i.s.Clear()
	}
}

// JoinerSecret is an epoch's joiner_secret: what a Welcome's GroupSecrets
// carries to new members (§12.4.3.1).
type JoinerSecret struct {
	suite *ciphersuite.Suite
	s     secret.Secret
}

// NewJoinerSecret wraps a joiner_secret of KDF.Nh bytes, as decrypted from
// GroupSecrets, taking ownership of s.
func NewJoinerSecret(suite *ciphersuite.Suite, s secret.Secret) (*JoinerSecret, error) {
	if err := checkSecret(suite, s); err != nil {
		return nil, err
	}
	return &JoinerSecret{suite: suite, s: s}, nil
}

// Secret returns a copy of the joiner_secret, to place in GroupSecrets.
func (j *JoinerSecret) Secret() secret.Secret {
	if j == nil {
		return secret.Secret{}
	}
	return secret.Copy(j.s.Bytes())
}

// WithPSK injects the psk_secret (§8.4; see PSKSecret) and returns the
// intermediate secret from which the welcome_secret and the epoch_secret
// are derived (§8):
//
//	KDF.Extract(joiner_secret, psk_secret)
//
// An empty pskSecret stands for the all-zero "0" used without PSKs.
func (j *JoinerSecret) WithPSK(pskSecret secret.Secret) (*MemberSecret, error) {
	if j == nil || j.s.IsZero() {
		return nil, ErrCleared
	}
	psk, err := orZero(j.suite, pskSecret)
	if err != nil {
		return nil, fmt.Errorf("psk_secret: %w", err)
	}
	defer psk.Clear()
	return &MemberSecret{suite: j.suite, s: secret.New(j.suite.Extract(j.s.Bytes(), psk.Bytes()))}, nil
}

// Clear deletes the joiner secret.
func (j *JoinerSecret) Clear() {
	if j != nil {
		j.s.Clear()
	}
}

// MemberSecret is the unnamed output of KDF.Extract(joiner_secret,
// psk_secret) in §8 (earlier drafts called it member_secret). It yields
// the welcome_secret and the epoch_secret.
type MemberSecret struct {
	suite *ciphersuite.Suite
	s     secret.Secret
}

// WelcomeSecret derives welcome_secret = DeriveSecret(., "welcome") (§8).
func (m *MemberSecret) WelcomeSecret() (*WelcomeSecret, error) {
	if m == nil || m.s.IsZero() {
		return nil, ErrCleared
	}
	return &WelcomeSecret{suite: m.suite, s: secret.New(m.suite.DeriveSecret(m.s.Bytes(), labelWelcome))}, nil
}

// Epoch derives the epoch_secret (§8),
//
//	epoch_secret = ExpandWithLabel(., "epoch", GroupContext_[n], KDF.Nh)
//
// and from it every epoch-derived secret; the epoch_secret itself is
// cleared before Epoch returns. groupContext is the encoded GroupContext of
// the new epoch.
func (m *MemberSecret) Epoch(groupContext []byte) (*Epoch, error) {
	if m == nil || m.s.IsZero() {
		return nil, ErrCleared
	}
	s := m.suite
	b, err := s.ExpandWithLabel(m.s.Bytes(), labelEpoch, groupContext, s.HashLen())
	if err != nil {
		return nil, err
	}
	epochSecret := secret.New(b)
	defer epochSecret.Clear()
	d := func(label string) secret.Secret { return secret.New(s.DeriveSecret(epochSecret.Bytes(), label)) }
	return &Epoch{
		suite:              s,
		senderDataSecret:   d(labelSenderData),
		encryptionSecret:   d(labelEncryption),
		exporterSecret:     d(labelExporter),
		externalSecret:     d(labelExternal),
		confirmationKey:    d(labelConfirm),
		membershipKey:      d(labelMembership),
		resumptionPSK:      d(labelResumption),
		epochAuthenticator: d(labelAuthentication),
		initSecret:         d(labelInit),
	}, nil
}

// Clear deletes the secret.
func (m *MemberSecret) Clear() {
	if m != nil {
		m.s.Clear()
	}
}

// WelcomeSecret is the welcome_secret of an epoch (§8), which protects the
// GroupInfo of a Welcome message.
type WelcomeSecret struct {
	suite *ciphersuite.Suite
	s     secret.Secret
}

// Secret returns a copy of the welcome_secret.
func (w *WelcomeSecret) Secret() secret.Secret {
	if w == nil {
		return secret.Secret{}
	}
	return secret.Copy(w.s.Bytes())
}

// KeyNonce derives the AEAD key and nonce that encrypt the GroupInfo of a
// Welcome (§12.4.3.1):
//
//	welcome_nonce = ExpandWithLabel(welcome_secret, "nonce", "", AEAD.Nn)
//	welcome_key = ExpandWithLabel(welcome_secret, "key", "", AEAD.Nk)
func (w *WelcomeSecret) KeyNonce() (key, nonce secret.Secret, err error) {
	if w == nil || w.s.IsZero() {
		return secret.Secret{}, secret.Secret{}, ErrCleared
	}
	return keyNonce(w.suite, w.s, nil)
}

// Clear deletes the welcome secret.
func (w *WelcomeSecret) Clear() {
	if w != nil {
		w.s.Clear()
	}
}

// keyNonce derives ExpandWithLabel(s, "key", context, AEAD.Nk) and
// ExpandWithLabel(s, "nonce", context, AEAD.Nn).
func keyNonce(suite *ciphersuite.Suite, s secret.Secret, context []byte) (key, nonce secret.Secret, err error) {
	k, err := suite.ExpandWithLabel(s.Bytes(), labelKey, context, suite.KeyLen())
	if err != nil {
		return secret.Secret{}, secret.Secret{}, err
	}
	n, err := suite.ExpandWithLabel(s.Bytes(), labelNonce, context, suite.NonceLen())
	if err != nil {
		clear(k)
		return secret.Secret{}, secret.Secret{}, err
	}
	return secret.New(k), secret.New(n), nil
}

// redact writes a placeholder naming the stage instead of its secret.
// fmt cannot call secret.Secret's own redacting methods on unexported
// fields, so every type of this package that holds secrets redacts itself.
func redact(f fmt.State, name string) { _, _ = f.Write([]byte("keyschedule." + name + "{[secret]}")) }

// Format redacts the secret for every verb.
func (InitSecret) Format(f fmt.State, _ rune) { redact(f, "InitSecret") }

// String redacts the secret.
func (InitSecret) String() string { return "keyschedule.InitSecret{[secret]}" }

// Format redacts the secret for every verb.
func (JoinerSecret) Format(f fmt.State, _ rune) { redact(f, "JoinerSecret") }

// String redacts the secret.
func (JoinerSecret) String() string { return "keyschedule.JoinerSecret{[secret]}" }

// Format redacts the secret for every verb.
func (MemberSecret) Format(f fmt.State, _ rune) { redact(f, "MemberSecret") }

// String redacts the secret.
func (MemberSecret) String() string { return "keyschedule.MemberSecret{[secret]}" }

// Format redacts the secret for every verb.
func (WelcomeSecret) Format(f fmt.State, _ rune) { redact(f, "WelcomeSecret") }

// String redacts the secret.
func (WelcomeSecret) String() string { return "keyschedule.WelcomeSecret{[secret]}" }

// Format redacts the secrets for every verb.
func (Epoch) Format(f fmt.State, _ rune) { redact(f, "Epoch") }

// String redacts the secrets.
func (Epoch) String() string { return "keyschedule.Epoch{[secret]}" }
