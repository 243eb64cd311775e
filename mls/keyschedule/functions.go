package keyschedule

import (
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// PSK is one pre-shared key injected into an epoch (§8.4).
type PSK struct {
	// ID is the encoded PreSharedKeyID naming the PSK, exactly as it
	// appears in the PreSharedKey proposal or GroupSecrets.
	ID []byte
	// Secret is the PSK itself: an external PSK's value, or the
	// resumption_psk of the named epoch. PSKSecret does not retain or clear
	// it.
	Secret secret.Secret
}

// PSKSecret chains psks, in the order the Commit or GroupSecrets lists
// them, into the psk_secret of the key schedule (§8.4):
//
//	psk_extracted_[i] = KDF.Extract(0, psk_[i])
//	psk_input_[i] = ExpandWithLabel(psk_extracted_[i], "derived psk",
//	                                PSKLabel, KDF.Nh)
//	psk_secret_[0] = 0
//	psk_secret_[i] = KDF.Extract(psk_input_[i-1], psk_secret_[i-1])
//
// where PSKLabel = struct { PreSharedKeyID id; uint16 index; uint16 count; }.
// With no PSKs the result is the all-zero psk_secret_[0] of KDF.Nh bytes.
func PSKSecret(suite *ciphersuite.Suite, psks []PSK) (secret.Secret, error) {
	if suite == nil {
		return secret.Secret{}, ErrNilSuite
	}
	if len(psks) > 0xffff {
		return secret.Secret{}, ErrTooManyPSKs
	}
	nh := suite.HashLen()
	zero := make([]byte, nh)
	acc := secret.Zero(nh)
	for i, psk := range psks {
		var w codec.Writer
		w.Raw(psk.ID)
		w.Uint16(uint16(i))
		w.Uint16(uint16(len(psks)))
		extracted := secret.New(suite.Extract(zero, psk.Secret.Bytes()))
		in, err := suite.ExpandWithLabel(extracted.Bytes(), labelDerivedPSK, w.Bytes(), nh)
		extracted.Clear()
		if err != nil {
			acc.Clear()
			return secret.Secret{}, fmt.Errorf("keyschedule: psk %d: %w", i, err)
		}
		input := secret.New(in)
		next := secret.New(suite.Extract(input.Bytes(), acc.Bytes()))
		input.Clear()
		acc.Clear()
		acc = next
	}
	return acc, nil
}

// ExternalInitSender is the joiner's side of external initialization
// (§8.3):
//
//	kem_output, context = SetupBaseS(external_pub, "")
//	init_secret = context.export("MLS 1.0 external init secret", KDF.Nh)
//
// externalPub is the external_pub of the group's GroupInfo. kemOutput goes
// into the ExternalInit proposal; the returned init secret starts the key
// schedule of the epoch the external Commit creates.
func ExternalInitSender(suite *ciphersuite.Suite, externalPub []byte) (kemOutput []byte, init *InitSecret, err error) {
	if suite == nil {
		return nil, nil, ErrNilSuite
	}
	kemOutput, exported, err := suite.HPKEExportSender(externalPub, nil, externalInitContext, suite.HashLen())
	if err != nil {
		return nil, nil, fmt.Errorf("keyschedule: external init: %w", err)
	}
	return kemOutput, &InitSecret{suite: suite, s: secret.New(exported)}, nil
}

// ExternalInitReceiver is the members' side of external initialization
// (§8.3):
//
//	context = SetupBaseR(kem_output, external_priv, "")
//	init_secret = context.export("MLS 1.0 external init secret", KDF.Nh)
//
// Epoch.ExternalInit does the same with the epoch's own external key pair.
func ExternalInitReceiver(suite *ciphersuite.Suite, externalPriv *ciphersuite.HPKEPrivateKey, kemOutput []byte) (*InitSecret, error) {
	if suite == nil {
		return nil, ErrNilSuite
	}
	if externalPriv == nil {
		return nil, fmt.Errorf("keyschedule: external init: nil private key")
	}
	exported, err := suite.HPKEExportReceiver(externalPriv, kemOutput, nil, externalInitContext, suite.HashLen())
	if err != nil {
		return nil, fmt.Errorf("keyschedule: external init: %w", err)
	}
	return &InitSecret{suite: suite, s: secret.New(exported)}, nil
}

// SenderDataKeyNonce derives the key and nonce that protect the SenderData
// of a PrivateMessage (§6.3.2) from a raw sender_data_secret:
//
//	ciphertext_sample = ciphertext[0..KDF.Nh-1]
//	sender_data_key = ExpandWithLabel(sender_data_secret, "key",
//	                                  ciphertext_sample, AEAD.Nk)
//	sender_data_nonce = ExpandWithLabel(sender_data_secret, "nonce",
//	                                    ciphertext_sample, AEAD.Nn)
//
// ciphertext is the PrivateMessage's content ciphertext; when it is shorter
// than KDF.Nh the whole of it is the sample. Members holding an Epoch use
// Epoch.SenderDataKeyNonce.
func SenderDataKeyNonce(suite *ciphersuite.Suite, senderDataSecret secret.Secret, ciphertext []byte) (key, nonce secret.Secret, err error) {
	if suite == nil {
		return secret.Secret{}, secret.Secret{}, ErrNilSuite
	}
	return senderDataKeyNonce(suite, senderDataSecret, ciphertext)
}

func senderDataKeyNonce(suite *ciphersuite.Suite, s secret.Secret, ciphertext []byte) (key, nonce secret.Secret, err error) {
	sample := ciphertext[:min(len(ciphertext), suite.HashLen())]
	return keyNonce(suite, s, sample)
}

// ConfirmedTranscriptHash computes (§8.2)
//
//	confirmed_transcript_hash_[epoch] =
//	    Hash(interim_transcript_hash_[epoch - 1] ||
//	         ConfirmedTranscriptHashInput_[epoch])
//
// where confirmedInput is the encoded ConfirmedTranscriptHashInput
// (wire_format, FramedContent, signature) of the Commit. The interim hash
// of epoch 0 is empty.
func ConfirmedTranscriptHash(suite *ciphersuite.Suite, interimBefore, confirmedInput []byte) ([]byte, error) {
	if suite == nil {
		return nil, ErrNilSuite
	}
	buf := make([]byte, 0, len(interimBefore)+len(confirmedInput))
	buf = append(append(buf, interimBefore...), confirmedInput...)
	return suite.Hash(buf), nil
}

// InterimTranscriptHash computes (§8.2)
//
//	interim_transcript_hash_[epoch] =
//	    Hash(confirmed_transcript_hash_[epoch] ||
//	         InterimTranscriptHashInput_[epoch])
//
// where InterimTranscriptHashInput is struct { MAC confirmation_tag; },
// encoded here from the raw confirmationTag as opaque<V>. A new member
// passes the confirmation_tag of the GroupInfo.
func InterimTranscriptHash(suite *ciphersuite.Suite, confirmed, confirmationTag []byte) ([]byte, error) {
	if suite == nil {
		return nil, ErrNilSuite
	}
	w := codec.NewWriter(len(confirmed) + codec.VarintLen(len(confirmationTag)) + len(confirmationTag))
	w.Raw(confirmed)
	w.VarBytes(confirmationTag)
	buf, err := w.Result()
	if err != nil {
		return nil, fmt.Errorf("keyschedule: confirmation tag: %w", err)
	}
	return suite.Hash(buf), nil
}

// ConfirmationTag computes MAC(confirmation_key, confirmed_transcript_hash)
// (§6.1) from a raw confirmation key. Members holding an Epoch use
// Epoch.ConfirmationTag.
func ConfirmationTag(suite *ciphersuite.Suite, confirmationKey secret.Secret, confirmedTranscriptHash []byte) ([]byte, error) {
	if suite == nil {
		return nil, ErrNilSuite
	}
	return suite.MAC(confirmationKey.Bytes(), confirmedTranscriptHash), nil
}

// VerifyConfirmationTag reports, in constant time, whether tag is
// MAC(confirmationKey, confirmedTranscriptHash) (§6.1).
func VerifyConfirmationTag(suite *ciphersuite.Suite, confirmationKey secret.Secret, confirmedTranscriptHash, tag []byte) bool {
	if suite == nil {
		return false
	}
	return suite.VerifyMAC(confirmationKey.Bytes(), confirmedTranscriptHash, tag)
}
