package conformance

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/secrettree"
	"github.com/mlsengine/mlsengine/mls/treemath"
)

// verifySecretTree checks the sender data key and nonce (RFC 9420 §6.3.2)
// and, on a secret tree over as many leaves as the case lists, the
// handshake and application keys and nonces of every listed generation
// (§9, §9.1).
func verifySecretTree(raw json.RawMessage) error {
	type generation struct {
		Generation       uint32   `json:"generation"`
		HandshakeKey     HexBytes `json:"handshake_key"`
		HandshakeNonce   HexBytes `json:"handshake_nonce"`
		ApplicationKey   HexBytes `json:"application_key"`
		ApplicationNonce HexBytes `json:"application_nonce"`
	}
	var tc struct {
		CipherSuite uint16 `json:"cipher_suite"`
		SenderData  struct {
			SenderDataSecret HexBytes `json:"sender_data_secret"`
			Ciphertext       HexBytes `json:"ciphertext"`
			Key              HexBytes `json:"key"`
			Nonce            HexBytes `json:"nonce"`
		} `json:"sender_data"`
		EncryptionSecret HexBytes       `json:"encryption_secret"`
		Leaves           [][]generation `json:"leaves"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	sd := tc.SenderData
	key, nonce, err := keyschedule.SenderDataKeyNonce(suite, secret.Copy(sd.SenderDataSecret), sd.Ciphertext)
	if err != nil {
		return fmt.Errorf("sender data: %w", err)
	}
	errs := []error{expectSecret("sender_data.key", key, sd.Key), expectSecret("sender_data.nonce", nonce, sd.Nonce)}
	key.Clear()
	nonce.Clear()

	// The generations are taken in the order listed; a window as wide as
	// the largest generation accepts any order the vector might use.
	var maxGen uint32
	for _, gens := range tc.Leaves {
		for _, g := range gens {
			maxGen = max(maxGen, g.Generation)
		}
	}
	tree, err := secrettree.New(suite, secret.Copy(tc.EncryptionSecret), treemath.LeafCount(len(tc.Leaves)),
		secrettree.WithMaxForwardDistance(maxGen), secrettree.WithOutOfOrderTolerance(maxGen))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer tree.Clear()
	for leaf, gens := range tc.Leaves {
		for _, g := range gens {
			for _, r := range []struct {
				rt         secrettree.RatchetType
				key, nonce []byte
			}{
				{secrettree.Handshake, g.HandshakeKey, g.HandshakeNonce},
				{secrettree.Application, g.ApplicationKey, g.ApplicationNonce},
			} {
				kn, err := tree.Key(treemath.LeafIndex(leaf), r.rt, g.Generation)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				name := fmt.Sprintf("leaf %d %v generation %d", leaf, r.rt, g.Generation)
				errs = append(errs, expectSecret(name+" key", kn.Key, r.key), expectSecret(name+" nonce", kn.Nonce, r.nonce))
				kn.Clear()
			}
		}
	}
	return errors.Join(errs...)
}
