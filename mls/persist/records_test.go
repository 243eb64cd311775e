package persist

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/vmihailenco/msgpack/v5"
)

// The sizes of MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519: hash, AEAD
// key and nonce.
const (
	testNh = 32
	testNk = 16
	testNn = 12
	// epochSecrets is keyschedule's StoredSecrets, the secrets of the
	// epoch/<e>/secrets record.
	epochSecrets = 6
)

func seq(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// envelopeCodecs pairs each record decoder with its encoder: decode
// returns the re-encoding of what it decoded, or an error.
func envelopeCodecs() map[string]func([]byte) ([]byte, error) {
	return map[string]func([]byte) ([]byte, error){
		"join-config": func(b []byte) ([]byte, error) {
			c, err := OpenConfig(b)
			if err != nil {
				return nil, err
			}
			return ConfigValue(&c), nil
		},
		"state": func(b []byte) ([]byte, error) {
			st, own, reinit, err := OpenState(b)
			if err != nil {
				return nil, err
			}
			return StateValue(st, own, reinit), nil
		},
		"tree/size": func(b []byte) ([]byte, error) {
			n, cs, err := OpenTreeSize(b)
			if err != nil {
				return nil, err
			}
			if cs == 0 {
				return TreeSizeValue(n), nil
			}
			return ChunkSizeValue(n, cs), nil
		},
		"tile": func(b []byte) ([]byte, error) {
			hashes, nodes, err := OpenTile(b)
			if err != nil {
				return nil, err
			}
			return TileValue(hashes, nodes), nil
		},
		"proposal": func(b []byte) ([]byte, error) {
			s, ac, err := OpenQueued(b)
			if err != nil {
				return nil, err
			}
			return QueuedValue(int(s), ac), nil
		},
		"past members": func(b []byte) ([]byte, error) {
			keys, err := OpenPastMembers(b)
			if err != nil {
				return nil, err
			}
			return PastMembersValue(keys), nil
		},
		"past delta": func(b []byte) ([]byte, error) {
			n, delta, err := OpenPastDelta(b)
			if err != nil {
				return nil, err
			}
			return PastDeltaValue(n, delta), nil
		},
		"value": func(b []byte) ([]byte, error) {
			v, err := OpenValue(b, ValueVersion, -1)
			if err != nil {
				return nil, err
			}
			return ValueEnvelope(ValueVersion, v), nil
		},
		"secret": func(b []byte) ([]byte, error) {
			s, err := OpenSecret(b, ValueVersion, testNh)
			if err != nil {
				return nil, err
			}
			defer s.Clear()
			return ValueEnvelope(ValueVersion, s.Bytes()), nil
		},
		"epoch secrets": func(b []byte) ([]byte, error) {
			all, err := OpenEpochSecrets(b, epochSecrets, testNh)
			if err != nil {
				return nil, err
			}
			defer func() {
				for i := range all {
					all[i].Clear()
				}
			}()
			return EpochSecretsValue(all), nil
		},
		"kept key": func(b []byte) ([]byte, error) {
			k, n, err := OpenKeptKey(b, testNk, testNn)
			if err != nil {
				return nil, err
			}
			defer k.Clear()
			defer n.Clear()
			return KeptKeyValue(k, n), nil
		},
		"pending secrets": func(b []byte) ([]byte, error) {
			s, err := OpenPendingSecrets(b, testNh)
			if err != nil {
				return nil, err
			}
			defer s.Clear()
			return PendingSecretsValue(s), nil
		},
		"key package keys": func(b []byte) ([]byte, error) {
			ik, ek, err := OpenKeyPackageKeys(b)
			if err != nil {
				return nil, err
			}
			defer ik.Clear()
			defer ek.Clear()
			return KeyPackageKeysValue(ik, ek), nil
		},
	}
}

// envelopeSeeds returns a valid envelope of every layout.
func envelopeSeeds() [][]byte {
	cfg := &Config{MaxPastEpochs: 3, NumberOfResumptionPSKs: 300, OutOfOrderTolerance: -1, MaxForwardDistance: 70000,
		PaddingBlock: 32, EncryptHandshake: true, KeyPackageLifetime: -time.Hour, MaxLeafLifetime: math.MaxInt64}
	stored := make([]secret.Secret, epochSecrets)
	for i := range stored {
		stored[i] = secret.New(seq(testNh, byte(i)))
	}
	out := [][]byte{
		ConfigValue(cfg),
		ConfigValue(&Config{}),
		StateValue(1, 7, nil),
		StateValue(4, 1<<20, []byte{1, 2, 3}),
		ChunkSizeValue(5, 64),
		ChunkSizeValue(math.MaxUint32, 1<<24),
		TreeSizeValue(5),
		TreeSizeValue(math.MaxUint32),
		TileValue(seq(15*testNh, 6), seq(300, 7)),
		TileValue(nil, nil),
		QueuedValue(0, seq(300, 9)),
		QueuedValue(70000, seq(70000, 9)),
		PastMembersValue([][]byte{seq(32, 1), nil, {}, seq(65, 2)}),
		PastDeltaValue(9, []PastDelta{{0, seq(32, 1)}, {3, nil}, {8, seq(65, 2)}}),
		PastDeltaValue(1, nil),
		ValueEnvelope(ValueVersion, seq(testNh, 3)),
		ValueEnvelope(ValueVersion, nil),
		EpochSecretsValue(stored),
		KeptKeyValue(secret.New(seq(testNk, 4)), secret.New(seq(testNn, 5))),
		ValueEnvelope(ValueVersion, seq(32, 0x11)),
		KeyPackageKeysValue(secret.New(seq(32, 0x11)), secret.New(seq(32, 0x22))),
	}
	for _, cs := range []secret.Secret{{}, secret.New(seq(testNh, 6))} {
		// A leaf key and one node key, as a commit of a two-member group
		// leaves them.
		out = append(out, PendingSecretsValue(&PendingSecrets{CommitSecret: cs, Leaf: 0, LeafKey: secret.New(seq(32, 0x11)),
			Nodes: []NodeKey{{Node: 1, Key: secret.New(seq(32, 0x22))}}}))
	}
	return out
}

func isEnvelopeError(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrTrailing) || errors.Is(err, ErrVersion)
}

// TestEnvelopeRoundTrip decodes and re-encodes every seed envelope with
// its own codec, and checks that every codec rejects the others' and
// every strict prefix or extension of them.
func TestEnvelopeRoundTrip(t *testing.T) {
	codecs := envelopeCodecs()
	for i, b := range envelopeSeeds() {
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
				if !isEnvelopeError(err) {
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
			if _, err := codec(append(slices.Clone(b), 0)); !errors.Is(err, ErrTrailing) {
				t.Fatalf("seed %d, %s: trailing byte: %v", i, name, err)
			}
			bumped := slices.Clone(b)
			bumped[1]++ // element 0, a fixint: the version
			if _, err := codec(bumped); !errors.Is(err, ErrVersion) {
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
	for _, c := range []Config{
		{OutOfOrderTolerance: -1, MaxForwardDistance: -33},
		{OutOfOrderTolerance: -129, MaxForwardDistance: -32769, KeyPackageLifetime: math.MinInt64},
		{MaxPastEpochs: 128, NumberOfResumptionPSKs: 256, PaddingBlock: 65536, MaxLeafLifetime: math.MaxInt64},
		{OutOfOrderTolerance: math.MaxInt32 + 1, MaxForwardDistance: math.MinInt32},
	} {
		got, err := OpenConfig(ConfigValue(&c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("config %+v: got %+v, %v", c, got, err)
		}
	}
	base := ConfigValue(&Config{}) // [1, 0, 0, 0, 0, 0, false, false, 0, 0]
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
		if _, err := OpenConfig(patch(slices.Clone(base))); !isEnvelopeError(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzEnvelopes feeds arbitrary bytes to every record decoder: none may
// panic, and what one accepts must re-encode to the same bytes (one
// encoding per value).
func FuzzEnvelopes(f *testing.F) {
	for _, b := range envelopeSeeds() {
		f.Add(b)
	}
	codecs := envelopeCodecs()
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, codec := range codecs {
			re, err := codec(b)
			if err != nil {
				if !isEnvelopeError(err) {
					t.Fatalf("%s: unclassified error %v", name, err)
				}
				continue
			}
			if !bytes.Equal(re, b) {
				t.Fatalf("%s: %x re-encodes as %x", name, b, re)
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
		clear(ValueEnvelope(ValueVersion, s))
	}
}
