package engine

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, id := range ciphersuite.All() {
		s, _ := ciphersuite.Lookup(id)
		k, err := s.GenerateSigningKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeSigner(encodeSigner(id, k))
		if err != nil || !bytes.Equal(got.PublicKey(), k.PublicKey()) {
			t.Fatalf("suite %v: %v", id, err)
		}
		m := meta{Suite: uint16(id), Signer: signerRef(k.PublicKey())}
		r := m.record([]byte("g"))
		gm, err := decodeMeta(r.Value)
		if err != nil || *gm != m {
			t.Fatalf("meta: %v", err)
		}
		for i := range r.Value {
			if _, err := decodeMeta(r.Value[:i]); err == nil {
				t.Fatalf("truncated meta record of %d bytes accepted", i)
			}
		}
		if _, err := decodeMeta(append(r.Value, 0)); err == nil {
			t.Fatal("meta record with a trailing byte accepted")
		}
	}
}

// FuzzRecords feeds arbitrary bytes to the decoders of the engine's own
// records: errors, never panics.
func FuzzRecords(f *testing.F) {
	s, _ := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	k, _ := s.GenerateSigningKey(rand.Reader)
	f.Add(encodeSigner(s.ID(), k))
	m := meta{Suite: 1, Signer: signerRef(k.PublicKey())}
	f.Add(m.record(nil).Value)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeMeta(b)
		_, _ = decodeSigner(b)
	})
}
