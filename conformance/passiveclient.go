package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mlsengine/mlsengine/internal/vectors"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// verifyPassiveClient follows a group as a passive member ("Passive Client
// Scenarios" of the test-vector format; passive-client-welcome,
// passive-client-handling-commit, passive-client-random): it checks that
// the private keys belong to the KeyPackage, joins from the Welcome with
// the external PSKs and the out-of-band ratchet tree if given, compares the
// epoch authenticator, then for each epoch processes the proposals and the
// commit and compares the epoch authenticator again.
func verifyPassiveClient(raw json.RawMessage) error {
	var tc vectors.PassiveClientCase
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
	if kp.CipherSuite != tc.CipherSuite {
		return fmt.Errorf("%w: key_package cipher suite", ErrMismatch)
	}
	initKey, err := suite.ParseHPKEPrivateKey(tc.InitPriv)
	if err != nil {
		return fmt.Errorf("init_priv: %w", err)
	}
	encKey, err := suite.ParseHPKEPrivateKey(tc.EncryptionPriv)
	if err != nil {
		return fmt.Errorf("encryption_priv: %w", err)
	}
	sigKey, err := suite.ParseSigningKey(tc.SignaturePriv)
	if err != nil {
		return fmt.Errorf("signature_priv: %w", err)
	}
	bundle, err := group.NewKeyPackageBundle(kp, initKey, encKey, sigKey)
	if err != nil {
		// The private keys do not belong to the KeyPackage.
		return fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	w, err := wire.UnmarshalMLSWelcome(tc.Welcome)
	if err != nil {
		return fmt.Errorf("welcome: %w", err)
	}

	psks := map[string]secret.Secret{}
	for _, p := range tc.ExternalPSKs {
		psks[string(p.PSKID)] = secret.Copy(p.PSK)
	}
	defer func() {
		for _, s := range psks {
			s.Clear()
		}
	}()
	// The vectors' leaves carry the lifetimes of the day they were
	// generated, which no single date need satisfy: a zero clock skips
	// the (RECOMMENDED, §7.3) lifetime checks of this replay.
	cfg := &group.Config{
		Now:                    func() time.Time { return time.Time{} },
		PSKs:                   group.ExternalPSKs(psks),
		NumberOfResumptionPSKs: 1 << 16,
	}
	g, err := group.Join(cfg, w, bundle, &group.JoinOptions{RatchetTree: tc.RatchetTree})
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if err := expectAuthenticator("initial_epoch_authenticator", g, tc.InitialEpochAuthenticator); err != nil {
		return err
	}
	for i, ep := range tc.Epochs {
		for j, p := range ep.Proposals {
			rm, err := g.ProcessBytes(p)
			if err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
			}
			if rm.Proposal == nil {
				return fmt.Errorf("%w: epoch %d proposal %d is not a proposal", ErrMismatch, i, j)
			}
		}
		rm, err := g.ProcessBytes(ep.Commit)
		if err != nil {
			return fmt.Errorf("epoch %d commit: %w", i, err)
		}
		if rm.Commit == nil {
			return fmt.Errorf("%w: epoch %d commit is not a commit", ErrMismatch, i)
		}
		if err := g.MergeStagedCommit(rm.Commit); err != nil {
			return fmt.Errorf("epoch %d merge: %w", i, err)
		}
		if err := expectAuthenticator(fmt.Sprintf("epochs[%d].epoch_authenticator", i), g, ep.EpochAuthenticator); err != nil {
			return err
		}
	}
	return nil
}

func expectAuthenticator(field string, g *group.Group, want []byte) error {
	ea := g.EpochAuthenticator()
	defer ea.Clear()
	if ea.IsZero() {
		return errors.New(field + ": the client is no longer a member")
	}
	return expectEqual(field, ea.Bytes(), want)
}
