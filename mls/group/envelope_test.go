package group

import (
	"bytes"
	"errors"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/persist"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/treekem"
	"github.com/vmihailenco/msgpack/v5"
)

func testSuite(t testing.TB) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func seq(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// envelopeCodecs pairs each envelope decoder with its encoder: decode
// returns the re-encoding of what it decoded, or an error.
func envelopeCodecs(suite *ciphersuite.Suite) map[string]func([]byte) ([]byte, error) {
	nh, nk, nn := suite.HashLen(), suite.KeyLen(), suite.NonceLen()
	return map[string]func([]byte) ([]byte, error){
		"join-config": func(b []byte) ([]byte, error) {
			var c Config
			if err := c.unmarshal(b); err != nil {
				return nil, err
			}
			return c.marshal(), nil
		},
		"state": func(b []byte) ([]byte, error) {
			st, own, reinit, err := openState(b)
			if err != nil {
				return nil, err
			}
			return stateValue(st, own, reinit), nil
		},
		"tree/size": func(b []byte) ([]byte, error) {
			n, cs, err := openTreeSize(b)
			if err != nil {
				return nil, err
			}
			if cs == 0 {
				return treeSizeValue(n), nil
			}
			return chunkSizeValue(n, cs), nil
		},
		"tile": func(b []byte) ([]byte, error) {
			hashes, nodes, err := openTile(b)
			if err != nil {
				return nil, err
			}
			return tileValue(hashes, nodes), nil
		},
		"proposal": func(b []byte) ([]byte, error) {
			s, ac, err := openQueued(b)
			if err != nil {
				return nil, err
			}
			return queuedValue(int(s), ac), nil
		},
		"past members": func(b []byte) ([]byte, error) {
			keys, err := openPastMembers(b)
			if err != nil {
				return nil, err
			}
			return pastMembersValue(keys), nil
		},
		"past delta": func(b []byte) ([]byte, error) {
			n, delta, err := openPastDelta(b)
			if err != nil {
				return nil, err
			}
			return pastDeltaValue(n, delta), nil
		},
		"value": func(b []byte) ([]byte, error) {
			v, err := persist.OpenValue(b, valueVersion, -1)
			if err != nil {
				return nil, err
			}
			return persist.ValueEnvelope(valueVersion, v), nil
		},
		"secret": func(b []byte) ([]byte, error) {
			s, err := persist.OpenSecret(b, valueVersion, nh)
			if err != nil {
				return nil, err
			}
			defer s.Clear()
			return persist.ValueEnvelope(valueVersion, s.Bytes()), nil
		},
		"epoch secrets": func(b []byte) ([]byte, error) {
			s, err := openEpochRecord(suite, b)
			if err != nil {
				return nil, err
			}
			defer s.Clear()
			return epochRecord(s), nil
		},
		"kept key": func(b []byte) ([]byte, error) {
			k, err := openKeptKey(b, nk, nn)
			if err != nil {
				return nil, err
			}
			return keptKeyValue(&k), nil
		},
		"pending secrets": func(b []byte) ([]byte, error) {
			cs, priv, err := openPendingSecrets(suite, b)
			if err != nil {
				return nil, err
			}
			defer cs.Clear()
			return pendingSecretsValue(cs, priv), nil
		},
	}
}

// envelopeSeeds returns a valid envelope of every layout.
func envelopeSeeds(t testing.TB, suite *ciphersuite.Suite) [][]byte {
	nh := suite.HashLen()
	cfg := &Config{MaxPastEpochs: 3, NumberOfResumptionPSKs: 300, OutOfOrderTolerance: -1, MaxForwardDistance: 70000,
		PaddingBlock: 32, EncryptHandshake: true, KeyPackageLifetime: -time.Hour, MaxLeafLifetime: math.MaxInt64}
	stored := make([]secret.Secret, keyschedule.StoredSecrets)
	for i := range stored {
		stored[i] = secret.New(seq(nh, byte(i)))
	}
	es, err := keyschedule.RestoreEpoch(suite, stored)
	if err != nil {
		t.Fatal(err)
	}
	k1, err := suite.GenerateKeyPair(bytes.NewReader(seq(64, 0x11)))
	if err != nil {
		t.Fatal(err)
	}
	k2, err := suite.GenerateKeyPair(bytes.NewReader(seq(64, 0x22)))
	if err != nil {
		t.Fatal(err)
	}
	k1b := k1.Bytes()
	defer k1b.Clear()
	out := [][]byte{
		cfg.marshal(),
		(&Config{}).marshal(),
		stateValue(StatusActive, 7, nil),
		stateValue(StatusReInit, 1<<20, []byte{1, 2, 3}),
		chunkSizeValue(5, 64),
		chunkSizeValue(math.MaxUint32, 1<<24),
		treeSizeValue(5),
		treeSizeValue(math.MaxUint32),
		tileValue(seq(15*nh, 6), seq(300, 7)),
		tileValue(nil, nil),
		queuedValue(0, seq(300, 9)),
		queuedValue(70000, seq(70000, 9)),
		pastMembersValue([][]byte{seq(32, 1), nil, {}, seq(65, 2)}),
		pastDeltaValue(9, []pastDelta{{0, seq(32, 1)}, {3, nil}, {8, seq(65, 2)}}),
		pastDeltaValue(1, nil),
		persist.ValueEnvelope(valueVersion, seq(nh, 3)),
		persist.ValueEnvelope(valueVersion, nil),
		epochRecord(es),
		keptKeyValue(&keptKey{key: secret.New(seq(suite.KeyLen(), 4)), nonce: secret.New(seq(suite.NonceLen(), 5))}),
		persist.ValueEnvelope(valueVersion, k1b.Bytes()),
	}
	for _, cs := range []secret.Secret{{}, secret.New(seq(nh, 6))} {
		// A state of a leaf key and one node key, as a commit of a
		// two-member group leaves it.
		ps, err := treekem.NewPrivateState(suite, 0, k1, []treekem.NodeKey{{Node: 1, Key: k2}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, pendingSecretsValue(cs, ps))
	}
	return out
}

// TestEnvelopeRoundTrip decodes and re-encodes every seed envelope with
// its own codec, and checks that every codec rejects the others' and
// every strict prefix or extension of them.
func TestEnvelopeRoundTrip(t *testing.T) {
	suite := testSuite(t)
	codecs := envelopeCodecs(suite)
	for i, b := range envelopeSeeds(t, suite) {
		if len(b) != cap(b) {
			t.Errorf("seed %d: capacity %d for %d bytes", i, cap(b), len(b))
		}
		var v []any
		if err := msgpack.Unmarshal(b, &v); err != nil || len(v) == 0 {
			t.Fatalf("seed %d: not a MessagePack array: %v", i, err)
		}
		if ver, ok := v[0].(int8); !ok || ver < 1 || ver > 2 {
			t.Fatalf("seed %d: element 0 is %#v, want version 1 or 2", i, v[0])
		}
		ok := 0
		for name, codec := range codecs {
			re, err := codec(b)
			if err != nil {
				if !errors.Is(err, ErrCorruptState) && !errors.Is(err, persist.ErrMalformed) &&
					!errors.Is(err, persist.ErrTrailing) && !errors.Is(err, persist.ErrVersion) {
					t.Errorf("seed %d, %s: unclassified error %v", i, name, err)
				}
				continue
			}
			ok++
			if !bytes.Equal(re, b) {
				t.Fatalf("seed %d, %s: re-encoding differs:\n%x\n%x", i, name, b, re)
			}
			for n := range len(b) {
				if _, err := codec(b[:n]); err == nil {
					t.Fatalf("seed %d, %s: prefix of %d bytes accepted", i, name, n)
				}
			}
			if _, err := codec(append(slices.Clone(b), 0)); !errors.Is(err, persist.ErrTrailing) && !errors.Is(err, ErrCorruptState) {
				t.Fatalf("seed %d, %s: trailing byte: %v", i, name, err)
			}
			bumped := slices.Clone(b)
			bumped[1]++ // element 0, a fixint: the version
			if _, err := codec(bumped); !errors.Is(err, persist.ErrVersion) {
				t.Fatalf("seed %d, %s: version %d: %v", i, name, bumped[1], err)
			}
		}
		if ok == 0 {
			t.Fatalf("seed %d: no codec accepts it", i)
		}
	}
}

// TestConfigEnvelopeStrict checks the configuration record's integers:
// signed and unsigned, every width, only in their shortest form.
func TestConfigEnvelopeStrict(t *testing.T) {
	// Integers of the configuration: signed and unsigned, every width.
	for _, c := range []Config{
		{OutOfOrderTolerance: -1, MaxForwardDistance: -33},
		{OutOfOrderTolerance: -129, MaxForwardDistance: -32769, KeyPackageLifetime: math.MinInt64},
		{MaxPastEpochs: 128, NumberOfResumptionPSKs: 256, PaddingBlock: 65536, MaxLeafLifetime: math.MaxInt64},
		{OutOfOrderTolerance: math.MaxInt32 + 1, MaxForwardDistance: math.MinInt32},
	} {
		var got Config
		if err := got.unmarshal(c.marshal()); err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("config %+v: got %+v, %v", c, got, err)
		}
	}
	base := (&Config{}).marshal() // [1, 0, 0, 0, 0, 0, false, false, 0, 0]
	for name, patch := range map[string]func([]byte) []byte{
		"uint8 zero":    func(b []byte) []byte { return slices.Concat(b[:2], []byte{0xcc, 0x00}, b[3:]) },
		"int8 zero":     func(b []byte) []byte { return slices.Concat(b[:4], []byte{0xd0, 0x00}, b[5:]) },
		"int16 -1":      func(b []byte) []byte { return slices.Concat(b[:4], []byte{0xd1, 0xff, 0xff}, b[5:]) },
		"uint64 as int": func(b []byte) []byte { return slices.Concat(b[:4], []byte{0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, b[5:]) },
		"negative uint": func(b []byte) []byte { return slices.Concat(b[:2], []byte{0xff}, b[3:]) },
		"nil bool":      func(b []byte) []byte { return slices.Concat(b[:7], []byte{0xc0}, b[8:]) },
		"int as bool":   func(b []byte) []byte { return slices.Concat(b[:7], []byte{0x00}, b[8:]) },
		"version 0":     func(b []byte) []byte { return slices.Concat(b[:1], []byte{0x00}, b[2:]) },
		"nine fields":   func(b []byte) []byte { return slices.Concat([]byte{0x99}, b[1:len(b)-1]) },
		"eleven fields": func(b []byte) []byte { return slices.Concat([]byte{0x9b}, b[1:], []byte{0x00}) },
		"uint32 small":  func(b []byte) []byte { return slices.Concat(b[:2], []byte{0xce, 0, 0, 0, 5}, b[3:]) },
	} {
		var c Config
		if err := c.unmarshal(patch(slices.Clone(base))); !errors.Is(err, ErrCorruptState) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzEnvelopes feeds arbitrary bytes to every envelope decoder: none may
// panic, and what one accepts must re-encode to the same bytes (one
// encoding per value).
func FuzzEnvelopes(f *testing.F) {
	suite := testSuite(f)
	seeds := envelopeSeeds(f, suite)
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, b := range seeds {
		f.Add(b)
	}
	codecs := envelopeCodecs(suite)
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, codec := range codecs {
			in := b
			re, err := codec(in)
			if err != nil {
				continue
			}
			if name == "pending secrets" {
				// The HPKE private keys inside are in the KEM's own form,
				// which can have several encodings of one key (X25519
				// clamps, RFC 7748 §5): the re-encoding must be stable.
				in = re
				if re, err = codec(in); err != nil {
					t.Fatalf("%s: re-encoding %x rejected: %v", name, in, err)
				}
			}
			if !bytes.Equal(re, in) {
				t.Fatalf("%s: %x re-encodes as %x", name, in, re)
			}
		}
	})
}

// BenchmarkSecretTreeRecord measures the envelope of a ratchet secret,
// written for every message sent or received.
func BenchmarkSecretTreeRecord(b *testing.B) {
	s := seq(32, 1)
	b.ReportAllocs()
	for b.Loop() {
		clear(persist.ValueEnvelope(valueVersion, s))
	}
}
