package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"
	"math"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/storage"
)

// Record names the engine adds to package group's (see the package
// documentation for their encodings).
const (
	// maxSigningKeyLen bounds a stored signature private key (Ed448's
	// 57 bytes, P-521's 66, with room).
	maxSigningKeyLen = 128
	metaName         = "engine"
	signerPrefix     = "signature/"
	recordVersion    = 1
)

// meta is the engine's public record of a group: what LoadGroup needs
// before package group can restore it.
type meta struct {
	Suite  uint16
	Signer string // hex SHA-256 of the signature public key
	// Welcome is the hex SHA-256 of the Welcome the member joined with
	// ("" for a group it created or joined otherwise), whose joined/<hex>
	// client record the group's deletion deletes too.
	Welcome string
}

// metaVersion is the layout of the engine record; version 1 had no
// Welcome and still loads.
const metaVersion = 2

// The engine's records are envelopes of package persist (MessagePack
// arrays whose element 0 is the layout's version, decoded strictly), like
// package group's:
//
//	engine            [2, suite uint16, signer str (64 hex digits), welcome str (64 hex digits or "")]
//	                  (version 1: [1, suite uint16, signer str])
//	signature/<hex>   [1, suite uint16, private key bin]
//	psk/<hex>         [1, psk_id bin, psk bin] (client, KeyMaterial)
//	joined/<hex>      [1, group id bin]: the group a Welcome (by the hex SHA-256 of its
//	                  MLSMessage encoding) was joined into (client, Public)
func (m *meta) record(groupID []byte) storage.Record {
	v := persist.Envelope(func(e *persist.Encoder) {
		e.Array(4)
		e.Uint(metaVersion)
		e.Uint(uint64(m.Suite))
		e.Str(m.Signer)
		e.Str(m.Welcome)
	})
	return storage.Record{Key: storage.Key{Scope: storage.GroupScope(groupID), Class: storage.Public, Name: metaName}, Value: v}
}

// records are the engine's records of a new group: the meta record, and
// the joined/<hex> record of its Welcome.
func (m *meta) records(groupID []byte) []storage.Record {
	out := []storage.Record{m.record(groupID)}
	if m.Welcome != "" {
		out = append(out, storage.Record{Key: joinedKey(m.Welcome), Value: persist.Envelope(func(e *persist.Encoder) {
			e.Array(2)
			e.Uint(recordVersion)
			e.Bin(groupID)
		})})
	}
	return out
}

// clientKeys are the client records that die with the group.
func (m *meta) clientKeys() []storage.Key {
	if m.Welcome == "" {
		return nil
	}
	return []storage.Key{joinedKey(m.Welcome)}
}

const joinedPrefix = "joined/"

func joinedKey(welcome string) storage.Key {
	return storage.Key{Scope: storage.ClientScope(), Class: storage.Public, Name: joinedPrefix + welcome}
}

// welcomeRef names a Welcome message by the SHA-256 of its encoding.
func welcomeRef(msg []byte) string {
	h := sha256.Sum256(msg)
	return hex.EncodeToString(h[:])
}

func decodeJoined(b []byte) ([]byte, error) {
	d := persist.NewDecoder(b)
	d.Open(recordVersion, 1)
	gid := d.Bin(storage.MaxGroupIDLen)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %s record: %w", ErrCorruptRecord, joinedPrefix, err)
	}
	return gid, nil
}

func decodeMeta(b []byte) (*meta, error) {
	d := persist.NewDecoder(b)
	m := &meta{}
	switch v, n := d.OpenAny(3); {
	case d.Err() != nil:
	case (v == 1 && n == 2) || (v == metaVersion && n == 3):
		m.Suite = uint16(d.Uint(math.MaxUint16))
		m.Signer = d.Str(2 * sha256.Size)
		if v == metaVersion {
			m.Welcome = d.Str(2 * sha256.Size)
		}
	default:
		d.Unknown(v, n)
	}
	err := d.Finish()
	if err == nil && (len(m.Signer) != 2*sha256.Size || (len(m.Welcome) != 0 && len(m.Welcome) != 2*sha256.Size)) {
		err = fmt.Errorf("hex names of %d and %d digits", len(m.Signer), len(m.Welcome))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptRecord, metaName, err)
	}
	return m, nil
}

// signerRef names a signature key by the SHA-256 of its public key, so
// that every group and key package of one identity shares one record.
func signerRef(pub []byte) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:])
}

func signerKey(ref string) storage.Key {
	return storage.Key{Scope: storage.ClientScope(), Class: storage.KeyMaterial, Name: signerPrefix + ref}
}

// encodeSigner writes the signer record.
func encodeSigner(suite ciphersuite.ID, k *ciphersuite.SigningKey) []byte {
	priv := k.Bytes()
	defer priv.Clear()
	return persist.Envelope(func(e *persist.Encoder) {
		e.Array(3)
		e.Uint(recordVersion)
		e.Uint(uint64(suite))
		e.Bin(priv.Bytes())
	})
}

func decodeSigner(b []byte) (*ciphersuite.SigningKey, error) {
	d := persist.NewDecoder(b)
	d.Open(recordVersion, 2)
	id := d.Uint(math.MaxUint16)
	key := d.Secret(-1)
	defer key.Clear()
	err := d.Finish()
	if err == nil && key.Len() > maxSigningKeyLen {
		err = fmt.Errorf("private key of %d bytes", key.Len())
	}
	if err != nil {
		return nil, fmt.Errorf("%w: signature key record: %w", ErrCorruptRecord, err)
	}
	s, err := ciphersuite.Lookup(ciphersuite.ID(id))
	if err != nil {
		return nil, fmt.Errorf("%w: signature key record: %w", ErrCorruptRecord, err)
	}
	k, err := s.ParseSigningKey(key.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: signature key record: %w", ErrCorruptRecord, err)
	}
	return k, nil
}

// storeSigner stores the signature key unless it is stored already. It is
// a client unit of its own: the key is shared, so two groups created at
// once must not conflict over it (write-once settles the race).
func storeSigner(ctx context.Context, store storage.Backend, suite ciphersuite.ID, k *ciphersuite.SigningKey) error {
	key := signerKey(signerRef(k.PublicKey()))
	old, err := store.Get(ctx, key)
	switch {
	case err == nil:
		clear(old)
		return nil
	case !errors.Is(err, storage.ErrNotFound):
		return storageErr("reading signature key", err)
	}
	v := encodeSigner(suite, k)
	defer clear(v)
	_, err = apply(ctx, store, &storage.Unit{Scope: storage.ClientScope(), Puts: []storage.Record{{Key: key, Value: v}}}, 0)
	if err != nil && !errors.Is(err, storage.ErrWriteOnce) {
		return storageErr("storing signature key", err)
	}
	return nil
}

func loadSigner(ctx context.Context, store storage.Backend, ref string) (*ciphersuite.SigningKey, error) {
	v, err := store.Get(ctx, signerKey(ref))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrSignerNotFound
	}
	if err != nil {
		return nil, storageErr("reading signature key", err)
	}
	defer clear(v)
	return decodeSigner(v)
}

// StoreSignatureKey stores a signature key pair of the suite, made here or
// imported, for the member's groups and key packages; NewGroup and
// NewKeyPackage store theirs too. Storing a key that is stored already does
// nothing.
func StoreSignatureKey(ctx context.Context, store storage.Backend, suite ciphersuite.ID, k *ciphersuite.SigningKey) error {
	if k == nil {
		return fmt.Errorf("%w: nil signature key", group.ErrInvalidArgument)
	}
	return storeSigner(ctx, store, suite, k)
}

// LoadSignatureKey returns the stored signature key whose public key is
// pub, or ErrSignerNotFound.
func LoadSignatureKey(ctx context.Context, store storage.Backend, pub []byte) (*ciphersuite.SigningKey, error) {
	return loadSigner(ctx, store, signerRef(pub))
}

// DeleteSignatureKey erases the stored signature key whose public key is
// pub. Groups and key packages that use it can no longer be loaded: delete
// it only with the identity.
func DeleteSignatureKey(ctx context.Context, store storage.Backend, pub []byte) error {
	_, err := apply(ctx, store, &storage.Unit{Scope: storage.ClientScope(), Deletes: []storage.Key{signerKey(signerRef(pub))}}, 0)
	if err != nil {
		return storageErr("deleting signature key", err)
	}
	return nil
}

func clearRecords(rs []storage.Record) {
	for i := range rs {
		if rs[i].Key.Class == storage.KeyMaterial {
			clear(rs[i].Value)
		}
	}
}
