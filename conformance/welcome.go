package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/welcome"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// verifyWelcome opens the Welcome with the KeyPackage's init key, verifies
// the GroupInfo signature with signer_pub and its confirmation tag against
// the key schedule from the decrypted joiner secret with no PSKs.
func verifyWelcome(raw json.RawMessage) error {
	var tc struct {
		CipherSuite uint16   `json:"cipher_suite"`
		InitPriv    HexBytes `json:"init_priv"`
		SignerPub   HexBytes `json:"signer_pub"`
		KeyPackage  HexBytes `json:"key_package"`
		Welcome     HexBytes `json:"welcome"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	kp, err := wire.UnmarshalMLSKeyPackage(tc.KeyPackage)
	if err != nil {
		return fmt.Errorf("key_package: %w", err)
	}
	w, err := wire.UnmarshalMLSWelcome(tc.Welcome)
	if err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	initKey, err := suite.ParseHPKEPrivateKey(tc.InitPriv)
	if err != nil {
		return fmt.Errorf("init_priv: %w", err)
	}
	if err := expectEqual("init_priv public key", initKey.PublicKey(), kp.InitKey); err != nil {
		return err
	}
	signer := func(*wire.GroupInfo) ([]byte, error) { return tc.SignerPub, nil }
	j, err := welcome.Open(w, kp, initKey, nil, signer)
	if err != nil {
		return err
	}
	j.Epoch.Clear()
	j.PathSecret.Clear()
	return nil
}
