package jetstore

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealing. Every KeyMaterial value is sealed before it leaves the process:
//
//	"MJS1" | generation (4) | len(key) (2) | key | len(sealed) (4) | nonce (24) | XChaCha20-Poly1305(value)
//
// under the wrapping key of that generation, with the record's key (member,
// scope, class and name: the subject without the bucket) as associated data,
// so a sealed value moved to another name or member does not open. The key
// is also written in clear in front of the nonce: names are not secret, and
// it and the length let an inspector find and open sealed values in raw
// file bytes.
//
// Wrapping keys are random, one per generation, stored in the key bucket
// under <member>.w.<generation>, each sealed under a key derived from the
// operator's root key:
//
//	"MJW1" | generation (4) | nonce (24) | XChaCha20-Poly1305(wrapping key)
//
// A generation is retired by erasing its record once no live value is
// sealed under it (see RotateWrappingKey); from then on a copy of a value
// sealed under it that erasure could not reach (a Raft log, a freed block,
// a backup) cannot be opened, even with the root key.
var (
	sealMagic = []byte("MJS1")
	wrapMagic = []byte("MJW1")
)

// RootKeySize is the size of the operator's root key.
const RootKeySize = 32

// LoadRootKeyFile reads a root key from a file that holds exactly
// RootKeySize bytes, or their hex encoding (64 characters, a trailing newline
// allowed). It refuses a file that other users can read or write.
func LoadRootKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: root key file: %w", ErrOptions, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: root key file %s has mode %v; it must not be readable or writable by group or others (chmod 600)", ErrOptions, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: root key file: %w", ErrOptions, err)
	}
	defer clear(b)
	return ParseRootKey(b)
}

// LoadRootKeyEnv reads a root key, hex-encoded, from an environment
// variable.
func LoadRootKeyEnv(name string) ([]byte, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, fmt.Errorf("%w: environment variable %s is not set", ErrOptions, name)
	}
	return ParseRootKey([]byte(v))
}

// ParseRootKey accepts RootKeySize raw bytes or their hex encoding.
func ParseRootKey(b []byte) ([]byte, error) {
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == RootKeySize {
		return bytes.Clone(b), nil
	}
	if len(b) == 2*RootKeySize {
		k := make([]byte, RootKeySize)
		for i := range k {
			v, err := strconv.ParseUint(string(b[2*i:2*i+2]), 16, 8)
			if err != nil {
				clear(k)
				return nil, fmt.Errorf("%w: root key is not %d bytes or their hex encoding", ErrOptions, RootKeySize)
			}
			k[i] = byte(v)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: root key is not %d bytes or their hex encoding", ErrOptions, RootKeySize)
}

// GenerateRootKey returns a new random root key in hex, for key files.
func GenerateRootKey() string {
	k := make([]byte, RootKeySize)
	_, _ = rand.Read(k)
	defer clear(k)
	return fmt.Sprintf("%x", k)
}

// keyring holds the unwrapped wrapping keys of one member.
type keyring struct {
	mu      sync.RWMutex
	kek     []byte               // derived from the root key; wraps the wrapping keys
	keys    map[uint32][]byte    // generation -> wrapping key
	seqs    map[uint32]uint64    // generation -> sequence of its record
	times   map[uint32]time.Time // generation -> when it was started
	current uint32
}

func newKeyring(root []byte, member string) (*keyring, error) {
	kek, err := hkdf.Key(sha256.New, root, nil, "mlsengine jetstore wrapping-key encryption key "+member, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return &keyring{kek: kek, keys: map[uint32][]byte{}, seqs: map[uint32]uint64{}, times: map[uint32]time.Time{}}, nil
}

func wrapAD(member string, gen uint32) []byte {
	return fmt.Appendf(nil, "mlsengine/jetstore/wrap/%s/%d", member, gen)
}

func (r *keyring) wrap(member string, gen uint32, key []byte) []byte {
	a, _ := chacha20poly1305.NewX(r.kek)
	out := append([]byte(nil), wrapMagic...)
	out = binary.BigEndian.AppendUint32(out, gen)
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return a.Seal(out, nonce, key, wrapAD(member, gen))
}

func (r *keyring) unwrap(member string, data []byte) (uint32, []byte, error) {
	a, _ := chacha20poly1305.NewX(r.kek)
	if len(data) < 8+a.NonceSize()+a.Overhead() || !bytes.Equal(data[:4], wrapMagic) {
		return 0, nil, fmt.Errorf("%w: malformed wrapping key record", ErrCorrupt)
	}
	gen := binary.BigEndian.Uint32(data[4:8])
	nonce := data[8 : 8+a.NonceSize()]
	key, err := a.Open(nil, nonce, data[8+a.NonceSize():], wrapAD(member, gen))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: wrapping key %d does not open under the root key (wrong root key?)", ErrCorrupt, gen)
	}
	return gen, key, nil
}

// seal seals value for the record key k (the subject without its bucket
// prefix) under the current generation.
func (r *keyring) seal(k string, value []byte) ([]byte, error) {
	r.mu.RLock()
	gen, key := r.current, r.keys[r.current]
	r.mu.RUnlock()
	if key == nil {
		return nil, errors.New("jetstore: no wrapping key")
	}
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 14+len(k)+a.NonceSize()+len(value)+a.Overhead())
	out = append(out, sealMagic...)
	out = binary.BigEndian.AppendUint32(out, gen)
	out = binary.BigEndian.AppendUint16(out, uint16(len(k)))
	out = append(out, k...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(value)+a.Overhead()))
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return a.Seal(out, nonce, value, []byte(k)), nil
}

// sealed is the parsed frame of a sealed value.
type sealed struct {
	gen   uint32
	key   string
	nonce []byte
	ct    []byte
	size  int // bytes of the frame
}

// parseSealed parses the frame at the start of b; trailing bytes are
// allowed (an inspector parses frames inside raw file bytes) and s.size says
// where the frame ends.
func parseSealed(b []byte) (sealed, bool) {
	const nonceSize = chacha20poly1305.NonceSizeX
	if len(b) < 14 || !bytes.Equal(b[:4], sealMagic) {
		return sealed{}, false
	}
	s := sealed{gen: binary.BigEndian.Uint32(b[4:8])}
	kl := int(binary.BigEndian.Uint16(b[8:10]))
	if len(b) < 14+kl {
		return sealed{}, false
	}
	s.key = string(b[10 : 10+kl])
	cl := int(binary.BigEndian.Uint32(b[10+kl : 14+kl]))
	start := 14 + kl + nonceSize
	if cl < chacha20poly1305.Overhead || len(b)-start < cl {
		return sealed{}, false
	}
	s.nonce = b[14+kl : start]
	s.ct = b[start : start+cl]
	s.size = start + cl
	return s, true
}

// open opens a sealed value stored under record key k.
func (r *keyring) open(k string, b []byte) ([]byte, error) {
	s, ok := parseSealed(b)
	if !ok || s.key != k || s.size != len(b) {
		return nil, fmt.Errorf("%w: sealed value of %s is malformed or belongs to another name", ErrCorrupt, k)
	}
	return r.openParsed(s)
}

// openParsed opens a parsed frame.
func (r *keyring) openParsed(s sealed) ([]byte, error) {
	r.mu.RLock()
	key := r.keys[s.gen]
	r.mu.RUnlock()
	if key == nil {
		return nil, fmt.Errorf("%w: value sealed under wrapping key generation %d, which is not held", ErrCorrupt, s.gen)
	}
	a, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	v, err := a.Open(nil, s.nonce, s.ct, []byte(s.key))
	if err != nil {
		return nil, fmt.Errorf("%w: sealed value of %s does not open", ErrCorrupt, s.key)
	}
	return v, nil
}

// install adds a wrapping key read from its record or just created.
func (r *keyring) install(gen uint32, key []byte, seq uint64, since time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.keys[gen]; old != nil {
		clear(old)
	}
	r.keys[gen] = key
	r.seqs[gen] = seq
	r.times[gen] = since
	if gen > r.current || r.keys[r.current] == nil {
		r.current = gen
	}
}

func (r *keyring) forget(gen uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.keys[gen])
	delete(r.keys, gen)
	delete(r.seqs, gen)
	delete(r.times, gen)
}

func (r *keyring) holds(gen uint32) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[gen] != nil
}

func (r *keyring) since(gen uint32) time.Time {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.times[gen]
}

func (r *keyring) generations() (cur uint32, all map[uint32]uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	all = make(map[uint32]uint64, len(r.seqs))
	for g, s := range r.seqs {
		all[g] = s
	}
	return r.current, all
}
