package group_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// newRand is a deterministic io.Reader for tests.
func newRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	return rand.NewChaCha8(s)
}

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func testConfig(seed uint64) *group.Config {
	return &group.Config{
		Rand:                   newRand(seed),
		Now:                    func() time.Time { return testNow },
		MaxPastEpochs:          2,
		NumberOfResumptionPSKs: 3,
	}
}

func newIdentity(t testing.TB, suite ciphersuite.ID, name string, rnd *rand.ChaCha8) *group.Identity {
	t.Helper()
	s, err := ciphersuite.Lookup(suite)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := s.GenerateSigningKey(rnd)
	if err != nil {
		t.Fatal(err)
	}
	return &group.Identity{
		Credential: wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)},
		SigningKey: sk,
	}
}

// client is one test participant: an identity, a config and, once joined,
// its group.
type client struct {
	name string
	id   *group.Identity
	cfg  *group.Config
	g    *group.Group
}

func newClient(t testing.TB, suite ciphersuite.ID, name string, seed uint64) *client {
	cfg := testConfig(seed)
	return &client{name: name, id: newIdentity(t, suite, name, cfg.Rand.(*rand.ChaCha8)), cfg: cfg}
}

func (c *client) keyPackage(t testing.TB, suite ciphersuite.ID) *group.KeyPackageBundle {
	t.Helper()
	kp, err := group.NewKeyPackage(suite, c.id, c.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// fingerprint is a digest of a group's whole persisted state.
func fingerprint(g *group.Group) [32]byte {
	h := sha256.New()
	for _, r := range g.Records() {
		fmt.Fprintf(h, "%v=", r.Key)
		h.Write(r.Value)
		h.Write([]byte{0})
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func mustEqualAuthenticators(t testing.TB, cs ...*client) {
	t.Helper()
	var want []byte
	for i, c := range cs {
		ea := c.g.EpochAuthenticator()
		if i == 0 {
			want = slices.Clone(ea.Bytes())
			continue
		}
		if !bytes.Equal(ea.Bytes(), want) || c.g.Epoch() != cs[0].g.Epoch() {
			t.Fatalf("%s (epoch %d) disagrees with %s (epoch %d)", c.name, c.g.Epoch(), cs[0].name, cs[0].g.Epoch())
		}
	}
}
