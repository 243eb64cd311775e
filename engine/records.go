package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
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

// The engine's records are msgpack arrays whose element 0 is the layout's
// version, like package group's envelopes (see mls/group/envelope.go):
//
//	engine            [1, suite uint16, signer str (64 hex digits)]
//	signature/<hex>   [1, suite uint16, private key bin]
//	engine            [2, suite uint16, signer str (64 hex digits), welcome str (64 hex digits or "")]
//	                  (version 1: [1, suite uint16, signer str])
//	joined/<hex>      [1, group id bin]: the group a Welcome (by the hex SHA-256 of its
//	                  MLSMessage encoding) was joined into (client, Public)
func (m *meta) record(groupID []byte) storage.Record {
	v := encodeVersioned(metaVersion, 3, len(m.Signer)+len(m.Welcome), func(e recordEncoder) {
		e.uint(uint64(m.Suite))
		e.str(m.Signer)
		e.str(m.Welcome)
	})
	return storage.Record{Key: storage.Key{Scope: storage.GroupScope(groupID), Class: storage.Public, Name: metaName}, Value: v}
}

// records are the engine's records of a new group: the meta record, and
// the joined/<hex> record of its Welcome.
func (m *meta) records(groupID []byte) []storage.Record {
	out := []storage.Record{m.record(groupID)}
	if m.Welcome != "" {
		out = append(out, storage.Record{Key: joinedKey(m.Welcome), Value: encodeRecord(1, len(groupID), func(e recordEncoder) { e.bin(groupID) })})
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
	dec, err := openRecord(b, 2)
	if err != nil {
		return nil, fmt.Errorf("%w: %s record: %w", ErrCorruptRecord, joinedPrefix, err)
	}
	gid, err := dec.bin(storage.MaxGroupIDLen)
	if err := errors.Join(err, finishRecord(dec)); err != nil {
		return nil, fmt.Errorf("%w: %s record: %v", ErrCorruptRecord, joinedPrefix, err)
	}
	return gid, nil
}

// recordEncoder writes the fields of an engine record.
type recordEncoder struct{ enc *msgpack.Encoder }

// A bytes.Buffer never fails a write, so neither do these.
func (e recordEncoder) uint(v uint64) { _ = e.enc.EncodeUint(v) }
func (e recordEncoder) bin(b []byte)  { _ = e.enc.EncodeBytes(b) }
func (e recordEncoder) str(s string)  { _ = e.enc.EncodeString(s) }

// encodeRecord writes [recordVersion, fields...] with n fields of about
// size payload bytes in all, into a buffer sized up front: a reallocation
// would leave a copy of a secret behind.
func encodeRecord(n, size int, f func(e recordEncoder)) []byte {
	return encodeVersioned(recordVersion, n, size, f)
}

// encodeVersioned is encodeRecord for a layout of another version.
func encodeVersioned(version uint64, n, size int, f func(e recordEncoder)) []byte {
	var buf bytes.Buffer
	buf.Grow(size + 16 + 9*n)
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(n + 1)
	_ = enc.EncodeUint(version)
	f(recordEncoder{enc})
	return buf.Bytes()
}

// recordDecoder reads an engine record. It keeps the bytes.Reader so that
// a length header can be checked against what is left before anything is
// allocated: msgpack's DecodeBytes allocates whatever a header claims.
type recordDecoder struct {
	*msgpack.Decoder
	r *bytes.Reader
}

// bin decodes a bin or str of at most limit bytes into a new slice.
func (d recordDecoder) bin(limit int) ([]byte, error) {
	n, err := d.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 || n > limit || n > d.r.Len() {
		return nil, fmt.Errorf("length %d out of range", n)
	}
	b := make([]byte, n)
	if err := d.ReadFull(b); err != nil {
		return nil, err
	}
	return b, nil
}

// openRecord decodes the header of an engine record: an array of n
// elements whose first is recordVersion.
func openRecord(b []byte, n int) (recordDecoder, error) {
	dec, l, v, err := openAnyRecord(b)
	if err == nil && (l != n || v != recordVersion) {
		err = fmt.Errorf("not an array of %d of version %d", n, recordVersion)
	}
	return dec, err
}

// openAnyRecord decodes the header of an engine record of any length and
// version.
func openAnyRecord(b []byte) (dec recordDecoder, n int, version uint64, err error) {
	r := bytes.NewReader(b)
	dec = recordDecoder{msgpack.NewDecoder(r), r}
	if n, err = dec.DecodeArrayLen(); err != nil || n < 1 {
		return dec, 0, 0, fmt.Errorf("not an array")
	}
	v, err := dec.DecodeUint()
	if err != nil {
		return dec, 0, 0, fmt.Errorf("no version")
	}
	return dec, n, uint64(v), nil
}

// finishRecord checks that nothing follows the record's array.
func finishRecord(dec recordDecoder) error {
	if dec.r.Len() != 0 {
		return fmt.Errorf("trailing bytes")
	}
	return nil
}

func decodeMeta(b []byte) (*meta, error) {
	dec, n, v, err := openAnyRecord(b)
	if err == nil && !(v == 1 && n == 3) && !(v == metaVersion && n == 4) {
		err = fmt.Errorf("version %d with %d elements", v, n)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorruptRecord, metaName, err)
	}
	suite, err1 := dec.DecodeUint16()
	signer, err2 := dec.bin(2 * sha256.Size)
	var welcome []byte
	var err3 error
	if v == metaVersion {
		welcome, err3 = dec.bin(2 * sha256.Size)
	}
	if err := errors.Join(err1, err2, err3, finishRecord(dec)); err != nil || len(signer) != 2*sha256.Size || (len(welcome) != 0 && len(welcome) != 2*sha256.Size) {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptRecord, metaName, err)
	}
	return &meta{Suite: suite, Signer: string(signer), Welcome: string(welcome)}, nil
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
	return encodeRecord(2, priv.Len(), func(e recordEncoder) {
		e.uint(uint64(suite))
		e.bin(priv.Bytes())
	})
}

func decodeSigner(b []byte) (*ciphersuite.SigningKey, error) {
	dec, err := openRecord(b, 3)
	if err != nil {
		return nil, fmt.Errorf("%w: signature key record: %w", ErrCorruptRecord, err)
	}
	id, err1 := dec.DecodeUint16()
	raw, err2 := dec.bin(maxSigningKeyLen)
	key := secret.New(raw)
	defer key.Clear()
	if err := errors.Join(err1, err2, finishRecord(dec)); err != nil {
		return nil, fmt.Errorf("%w: signature key record: %v", ErrCorruptRecord, err)
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

func storageKey(groupID []byte, s group.RecordScope, c group.RecordClass, name string) storage.Key {
	k := storage.Key{Scope: storage.ClientScope(), Class: storage.Public, Name: name}
	if s == group.GroupScope {
		k.Scope = storage.GroupScope(groupID)
	}
	if c == group.KeyMaterial {
		k.Class = storage.KeyMaterial
	}
	return k
}

// toStorage turns package group's records into storage records, sharing
// the values (the caller clears key material once the unit is applied).
func toStorage(groupID []byte, rs []group.Record) []storage.Record {
	out := make([]storage.Record, 0, len(rs)+1)
	for _, r := range rs {
		out = append(out, storage.Record{Key: storageKey(groupID, r.Scope, r.Class, r.Name), Value: r.Value})
	}
	return out
}

// toStoragePrefixes turns package group's deleted prefixes into storage's.
func toStoragePrefixes(groupID []byte, ps []group.RecordKey) []storage.KeyPrefix {
	out := make([]storage.KeyPrefix, 0, len(ps))
	for _, p := range ps {
		k := storageKey(groupID, p.Scope, p.Class, p.Name[:len(p.Name)-1])
		out = append(out, storage.KeyPrefix{Scope: k.Scope, Class: k.Class, Prefix: p.Name})
	}
	return out
}

func toStorageKeys(groupID []byte, ks []group.RecordKey) []storage.Key {
	out := make([]storage.Key, 0, len(ks))
	for _, k := range ks {
		out = append(out, storageKey(groupID, k.Scope, k.Class, k.Name))
	}
	return out
}

// fromStorage turns a group's stored records into package group's, sharing
// the values.
func fromStorage(rs []storage.Record) []group.Record {
	out := make([]group.Record, 0, len(rs))
	for _, r := range rs {
		c := group.Public
		if r.Key.Class == storage.KeyMaterial {
			c = group.KeyMaterial
		}
		s := group.GroupScope
		if r.Key.Scope.IsClient() {
			s = group.ClientScope
		}
		out = append(out, group.Record{Scope: s, Class: c, Name: r.Key.Name, Value: r.Value})
	}
	return out
}

func clearRecords(rs []storage.Record) {
	for i := range rs {
		if rs[i].Key.Class == storage.KeyMaterial {
			clear(rs[i].Value)
		}
	}
}
