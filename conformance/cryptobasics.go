package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
)

// verifyCryptoBasics runs every check of the "Crypto Basics" verification
// list for one case: ref_hash (RFC 9420 §5.2), expand_with_label and
// derive_secret (§8), derive_tree_secret (§9.1), sign_with_label (§5.1.2)
// and encrypt_with_label (§5.1.3), the last two in both directions.
func verifyCryptoBasics(raw json.RawMessage) error {
	var tc struct {
		CipherSuite uint16 `json:"cipher_suite"`
		RefHash     struct {
			Label string   `json:"label"`
			Value HexBytes `json:"value"`
			Out   HexBytes `json:"out"`
		} `json:"ref_hash"`
		ExpandWithLabel struct {
			Secret  HexBytes `json:"secret"`
			Label   string   `json:"label"`
			Context HexBytes `json:"context"`
			Length  int      `json:"length"`
			Out     HexBytes `json:"out"`
		} `json:"expand_with_label"`
		DeriveSecret struct {
			Secret HexBytes `json:"secret"`
			Label  string   `json:"label"`
			Out    HexBytes `json:"out"`
		} `json:"derive_secret"`
		DeriveTreeSecret struct {
			Secret     HexBytes `json:"secret"`
			Label      string   `json:"label"`
			Generation uint32   `json:"generation"`
			Length     int      `json:"length"`
			Out        HexBytes `json:"out"`
		} `json:"derive_tree_secret"`
		SignWithLabel struct {
			Priv      HexBytes `json:"priv"`
			Pub       HexBytes `json:"pub"`
			Content   HexBytes `json:"content"`
			Label     string   `json:"label"`
			Signature HexBytes `json:"signature"`
		} `json:"sign_with_label"`
		EncryptWithLabel struct {
			Priv       HexBytes `json:"priv"`
			Pub        HexBytes `json:"pub"`
			Label      string   `json:"label"`
			Context    HexBytes `json:"context"`
			Plaintext  HexBytes `json:"plaintext"`
			KEMOutput  HexBytes `json:"kem_output"`
			Ciphertext HexBytes `json:"ciphertext"`
		} `json:"encrypt_with_label"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	s, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}

	// ref_hash: out == RefHash(label, value)
	if err := expectEqual("ref_hash", s.RefHash(tc.RefHash.Label, tc.RefHash.Value), tc.RefHash.Out); err != nil {
		return err
	}

	// expand_with_label: out == ExpandWithLabel(secret, label, context, length)
	e := tc.ExpandWithLabel
	out, err := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length)
	if err != nil {
		return fmt.Errorf("expand_with_label: %w", err)
	}
	if err := expectEqual("expand_with_label", out, e.Out); err != nil {
		return err
	}

	// derive_secret: out == DeriveSecret(secret, label)
	d := tc.DeriveSecret
	if err := expectEqual("derive_secret", s.DeriveSecret(d.Secret, d.Label), d.Out); err != nil {
		return err
	}

	// derive_tree_secret: out == DeriveTreeSecret(secret, label, generation, length)
	t := tc.DeriveTreeSecret
	out, err = s.DeriveTreeSecret(t.Secret, t.Label, t.Generation, t.Length)
	if err != nil {
		return fmt.Errorf("derive_tree_secret: %w", err)
	}
	if err := expectEqual("derive_tree_secret", out, t.Out); err != nil {
		return err
	}

	// sign_with_label: the given signature verifies, and so does our own.
	sg := tc.SignWithLabel
	if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sg.Signature); err != nil {
		return fmt.Errorf("%w: sign_with_label: vector signature: %w", ErrMismatch, err)
	}
	sk, err := s.ParseSigningKey(sg.Priv)
	if err != nil {
		return fmt.Errorf("sign_with_label: priv: %w", err)
	}
	sig, err := s.SignWithLabel(sk, sg.Label, sg.Content)
	if err != nil {
		return fmt.Errorf("sign_with_label: %w", err)
	}
	if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sig); err != nil {
		return fmt.Errorf("%w: sign_with_label: own signature: %w", ErrMismatch, err)
	}

	// encrypt_with_label: the given ciphertext decrypts, and so does a fresh
	// encryption to pub.
	en := tc.EncryptWithLabel
	priv, err := s.ParseHPKEPrivateKey(en.Priv)
	if err != nil {
		return fmt.Errorf("encrypt_with_label: priv: %w", err)
	}
	pt, err := s.DecryptWithLabel(priv, en.Label, en.Context, en.KEMOutput, en.Ciphertext)
	if err != nil {
		return fmt.Errorf("%w: encrypt_with_label: vector ciphertext: %w", ErrMismatch, err)
	}
	if err := expectEqual("encrypt_with_label plaintext", pt, en.Plaintext); err != nil {
		return err
	}
	kemOutput, ct, err := s.EncryptWithLabel(en.Pub, en.Label, en.Context, en.Plaintext)
	if err != nil {
		return fmt.Errorf("encrypt_with_label: %w", err)
	}
	pt, err = s.DecryptWithLabel(priv, en.Label, en.Context, kemOutput, ct)
	if err != nil {
		return fmt.Errorf("%w: encrypt_with_label: own ciphertext: %w", ErrMismatch, err)
	}
	return expectEqual("encrypt_with_label round trip", pt, en.Plaintext)
}
