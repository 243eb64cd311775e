package group_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/internal/vectors"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
)

type passiveCase = vectors.PassiveClientCase

// passiveClientFiles lists the passive-client vector files
// (mls-implementations test-vectors.md, "Passive Client Scenarios").
func passiveClientFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../testdata/vectors/passive-client-*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no passive-client vectors: %v", err)
	}
	return files
}

func loadPassive(t *testing.T, file string) []passiveCase {
	t.Helper()
	cases, err := vectors.Load[passiveCase](file)
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// runRestoring follows one passive-client case as the conformance verifier
// does, but round-trips the group through its records before every
// message.
func runRestoring(tc *passiveCase) error {
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	kp, err := wire.UnmarshalMLSKeyPackage(tc.KeyPackage)
	if err != nil {
		return err
	}
	ik, err := suite.ParseHPKEPrivateKey(tc.InitPriv)
	if err != nil {
		return err
	}
	ek, err := suite.ParseHPKEPrivateKey(tc.EncryptionPriv)
	if err != nil {
		return err
	}
	sk, err := suite.ParseSigningKey(tc.SignaturePriv)
	if err != nil {
		return err
	}
	b, err := group.NewKeyPackageBundle(kp, ik, ek, sk)
	if err != nil {
		return err
	}
	w, err := wire.UnmarshalMLSWelcome(tc.Welcome)
	if err != nil {
		return err
	}
	psks := map[string]secret.Secret{}
	for _, p := range tc.ExternalPSKs {
		psks[string(p.PSKID)] = secret.Copy(p.PSK)
	}
	cfg := &group.Config{Now: func() time.Time { return time.Time{} }, PSKs: group.ExternalPSKs(psks), NumberOfResumptionPSKs: 1000}
	g, err := group.Join(cfg, w, b, &group.JoinOptions{RatchetTree: tc.RatchetTree})
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	check := func(what string, want []byte) error {
		ea := g.EpochAuthenticator()
		if string(ea.Bytes()) != string(want) {
			return fmt.Errorf("%s: epoch authenticator mismatch", what)
		}
		return nil
	}
	if err := check("initial", tc.InitialEpochAuthenticator); err != nil {
		return err
	}
	reload := func() error {
		g.TakeChanges()
		g2, err := group.Restore(cfg, sk, g.Records())
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		g = g2
		return nil
	}
	for i, ep := range tc.Epochs {
		for j, p := range ep.Proposals {
			if err := reload(); err != nil {
				return err
			}
			if _, err := g.ProcessBytes(p); err != nil {
				return fmt.Errorf("epoch %d proposal %d: %w", i, j, err)
			}
		}
		if err := reload(); err != nil {
			return err
		}
		rm, err := g.ProcessBytes(ep.Commit)
		if err != nil {
			return fmt.Errorf("epoch %d commit: %w", i, err)
		}
		if rm.Commit == nil {
			return fmt.Errorf("epoch %d: not a commit", i)
		}
		if err := g.MergeStagedCommit(rm.Commit); err != nil {
			return err
		}
		if err := check(fmt.Sprintf("epoch %d", i), ep.EpochAuthenticator); err != nil {
			return err
		}
	}
	return nil
}

// TestPassiveClientRestore follows every passive-client case with a group
// reloaded from its records before every message: it must reach every
// epoch authenticator of the case. The conformance package's
// TestOfficialVectors follows the cases with one group throughout.
func TestPassiveClientRestore(t *testing.T) {
	for _, f := range passiveClientFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cases := loadPassive(t, f)
			passed := 0
			for i := range cases {
				if err := runRestoring(&cases[i]); err != nil {
					t.Errorf("case %d (suite %d): %v", i, cases[i].CipherSuite, err)
				} else {
					passed++
				}
			}
			t.Logf("%d passed, %d failed", passed, len(cases)-passed)
		})
	}
}

// TestCiphersuiteShortP521Key: the passive-client vectors write some P-521
// HPKE private keys as 65-byte scalars (leading zero byte dropped), which
// ParseHPKEPrivateKey must accept as ParseSigningKey does for ECDSA keys.
func TestCiphersuiteShortP521Key(t *testing.T) {
	for i, c := range loadPassive(t, "../../testdata/vectors/passive-client-welcome.json") {
		if c.CipherSuite != 5 {
			continue
		}
		suite, _ := ciphersuite.Lookup(5)
		for name, k := range map[string][]byte{"init_priv": c.InitPriv, "encryption_priv": c.EncryptionPriv} {
			if _, err := suite.ParseHPKEPrivateKey(k); err != nil {
				t.Errorf("case %d %s (%d bytes): %v", i, name, len(k), err)
			}
		}
	}
}
