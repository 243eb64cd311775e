package welcome

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
)

type vector struct {
	suite   *ciphersuite.Suite
	initKey *ciphersuite.HPKEPrivateKey
	signer  []byte
	kp      *wire.KeyPackage
	welcome *wire.Welcome
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	data, err := os.ReadFile("../../testdata/vectors/welcome.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	unhex := func(m map[string]any, k string) []byte {
		b, err := hex.DecodeString(m[k].(string))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var out []vector
	for _, m := range raw {
		suite, err := ciphersuite.Lookup(ciphersuite.ID(m["cipher_suite"].(float64)))
		if err != nil {
			t.Fatal(err)
		}
		ik, err := suite.ParseHPKEPrivateKey(unhex(m, "init_priv"))
		if err != nil {
			t.Fatal(err)
		}
		kp, err := wire.UnmarshalMLSKeyPackage(unhex(m, "key_package"))
		if err != nil {
			t.Fatal(err)
		}
		w, err := wire.UnmarshalMLSWelcome(unhex(m, "welcome"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, vector{suite, ik, unhex(m, "signer_pub"), kp, w})
	}
	if len(out) == 0 {
		t.Fatal("no vectors")
	}
	return out
}

func (v vector) signerKey(*wire.GroupInfo) ([]byte, error) { return v.signer, nil }

func TestOpenVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.suite.String(), func(t *testing.T) {
			j, err := Open(v.welcome, v.kp, v.initKey, nil, v.signerKey)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Epoch.Clear()
			if got := j.GroupInfo.GroupContext.CipherSuite; got != uint16(v.suite.ID()) {
				t.Fatalf("suite %d", got)
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.suite.String(), func(t *testing.T) {
			flip := func(b []byte) []byte {
				c := append([]byte(nil), b...)
				c[len(c)-1] ^= 1
				return c
			}
			other, err := v.suite.GenerateKeyPair(nil)
			if err != nil {
				t.Fatal(err)
			}
			signing, err := v.suite.GenerateSigningKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			cases := map[string]struct {
				w      *wire.Welcome
				kp     *wire.KeyPackage
				ik     *ciphersuite.HPKEPrivateKey
				signer SignerKey
				want   error
			}{
				"wrong signer key": {v.welcome, v.kp, v.initKey, func(*wire.GroupInfo) ([]byte, error) { return signing.PublicKey(), nil }, ErrBadSignature},
				"wrong init key":   {v.welcome, v.kp, other, v.signerKey, ErrDecryption},
				"tampered group info": {&wire.Welcome{CipherSuite: v.welcome.CipherSuite, Secrets: v.welcome.Secrets,
					EncryptedGroupInfo: flip(v.welcome.EncryptedGroupInfo)}, v.kp, v.initKey, v.signerKey, ErrDecryption},
				"not for us": {&wire.Welcome{CipherSuite: v.welcome.CipherSuite, EncryptedGroupInfo: v.welcome.EncryptedGroupInfo},
					v.kp, v.initKey, v.signerKey, ErrNotForUs},
				"suite mismatch": {&wire.Welcome{CipherSuite: v.welcome.CipherSuite%7 + 1, Secrets: v.welcome.Secrets,
					EncryptedGroupInfo: v.welcome.EncryptedGroupInfo}, v.kp, v.initKey, v.signerKey, ErrCipherSuiteMismatch},
				"signer lookup fails": {v.welcome, v.kp, v.initKey, func(*wire.GroupInfo) ([]byte, error) { return nil, errors.New("no leaf") }, nil},
			}
			for name, c := range cases {
				j, err := Open(c.w, c.kp, c.ik, nil, c.signer)
				if err == nil {
					j.Epoch.Clear()
					t.Errorf("%s: accepted", name)
					continue
				}
				if c.want != nil && !errors.Is(err, c.want) {
					t.Errorf("%s: err %v, want %v", name, err, c.want)
				}
			}
		})
	}
}

// TestOpenUnknownPSK re-encrypts the vector's GroupSecrets with an added PSK
// the resolver does not know, and with one it does but whose value differs
// from what the sender used: the first is ErrUnknownPSK, the second breaks
// the welcome key so the GroupInfo does not decrypt.
func TestOpenPSKs(t *testing.T) {
	v := loadVectors(t)[0]
	j, err := Open(v.welcome, v.kp, v.initKey, nil, v.signerKey)
	if err != nil {
		t.Fatal(err)
	}
	j.Epoch.Clear()
	// Recover the GroupSecrets to re-encrypt them with a PSK.
	egs := v.welcome.Find(v.suite.MakeKeyPackageRef(v.kp.Bytes()))
	plain, err := v.suite.DecryptWithLabel(v.initKey, "Welcome", v.welcome.EncryptedGroupInfo, egs.EncryptedGroupSecrets.KEMOutput, egs.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	gs, err := wire.Unmarshal[wire.GroupSecrets](plain)
	if err != nil {
		t.Fatal(err)
	}
	gs.PSKs = []wire.PreSharedKeyID{{PSKType: wire.PSKTypeExternal, PSKID: []byte("id"), PSKNonce: make([]byte, v.suite.HashLen())}}
	enc, err := codec.Marshal(gs)
	if err != nil {
		t.Fatal(err)
	}
	kem, ct, err := v.suite.EncryptWithLabel(v.initKey.PublicKey(), "Welcome", v.welcome.EncryptedGroupInfo, enc)
	if err != nil {
		t.Fatal(err)
	}
	w := &wire.Welcome{CipherSuite: v.welcome.CipherSuite, EncryptedGroupInfo: v.welcome.EncryptedGroupInfo,
		Secrets: []wire.EncryptedGroupSecrets{{NewMember: egs.NewMember, EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}}}}
	if _, err := Open(w, v.kp, v.initKey, nil, v.signerKey); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("no resolver: err %v", err)
	}
	known := func(*wire.PreSharedKeyID) (secret.Secret, error) { return secret.Copy([]byte("some psk")), nil }
	if _, err := Open(w, v.kp, v.initKey, known, v.signerKey); !errors.Is(err, ErrDecryption) {
		t.Fatalf("unexpected PSK: err %v", err)
	}
}

func BenchmarkOpen(b *testing.B) {
	v := loadVectors(b)[0]
	b.ReportAllocs()
	for b.Loop() {
		j, err := Open(v.welcome, v.kp, v.initKey, nil, v.signerKey)
		if err != nil {
			b.Fatal(err)
		}
		j.Epoch.Clear()
	}
}

// FuzzOpen feeds arbitrary MLSMessage bytes as a Welcome for the vector's
// key package: decoding or opening may fail, but only with an error.
func FuzzOpen(f *testing.F) {
	vs := loadVectors(f)
	for _, v := range vs {
		enc, err := codec.Marshal(wire.WrapWelcome(v.welcome))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	v := vs[0]
	f.Fuzz(func(t *testing.T, in []byte) {
		w, err := wire.UnmarshalMLSWelcome(in)
		if err != nil {
			return
		}
		if j, err := Open(w, v.kp, v.initKey, nil, v.signerKey); err == nil {
			j.Epoch.Clear()
		}
	})
}
