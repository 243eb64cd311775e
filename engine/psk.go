package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/mlsengine/mlsengine/mls/persist"

	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage"
)

// External PSKs (RFC 9420 §8.4) are client records, KeyMaterial, named
// by the SHA-256 of their psk_id (ids are arbitrary bytes, names are not):
//
//	client  KeyMaterial  psk/<hex SHA-256 of psk_id>   [1, psk_id bin, psk bin]
//
// Groups resolve external PSKs from Config.PSKs first, then from the
// store, so that a PSK stored once serves every group of the client.
const (
	pskPrefix = "psk/"
	maxPSKLen = 1 << 10
)

func pskKey(id []byte) storage.Key {
	h := sha256.Sum256(id)
	return storage.Key{Scope: storage.ClientScope(), Class: storage.KeyMaterial, Name: pskPrefix + hex.EncodeToString(h[:])}
}

// StorePSK stores an external PSK under its psk_id for every group of the
// client. A PSK is write-once: storing another under the same id fails
// with an error matching storage.ErrWriteOnce (delete the old one first).
func StorePSK(ctx context.Context, store storage.Backend, pskID []byte, psk secret.Secret) error {
	if len(pskID) == 0 || psk.Len() == 0 || psk.Len() > maxPSKLen {
		return fmt.Errorf("%w: empty PSK id, or PSK of %d bytes", group.ErrInvalidArgument, psk.Len())
	}
	v := persist.Envelope(func(e *persist.Encoder) {
		e.Array(3)
		e.Uint(recordVersion)
		e.Bin(pskID)
		e.Bin(psk.Bytes())
	})
	defer clear(v)
	if _, err := apply(ctx, store, &storage.Unit{Scope: storage.ClientScope(), Puts: []storage.Record{{Key: pskKey(pskID), Value: v}}}, 0); err != nil {
		if errors.Is(err, storage.ErrWriteOnce) {
			return fmt.Errorf("engine: a PSK with this id is stored: %w", err)
		}
		return storageErr("storing PSK", err)
	}
	return nil
}

// DeletePSK erases a stored external PSK.
func DeletePSK(ctx context.Context, store storage.Backend, pskID []byte) error {
	if _, err := apply(ctx, store, &storage.Unit{Scope: storage.ClientScope(), Deletes: []storage.Key{pskKey(pskID)}}, 0); err != nil {
		return storageErr("deleting PSK", err)
	}
	return nil
}

// loadPSK reads a stored external PSK; group.ErrUnknownPSK if there is none.
func loadPSK(ctx context.Context, store storage.Backend, pskID []byte) (secret.Secret, error) {
	v, err := store.Get(ctx, pskKey(pskID))
	if errors.Is(err, storage.ErrNotFound) {
		return secret.Secret{}, group.ErrUnknownPSK
	}
	if err != nil {
		return secret.Secret{}, storageErr("reading PSK", err)
	}
	defer clear(v)
	d := persist.NewDecoder(v)
	d.Open(recordVersion, 2)
	id := d.Bin(-1)
	s := d.Secret(-1)
	err = d.Finish()
	if err == nil && (string(id) != string(pskID) || s.Len() > maxPSKLen) {
		err = fmt.Errorf("psk_id or length differ")
	}
	if err != nil {
		s.Clear()
		return secret.Secret{}, fmt.Errorf("%w: PSK record: %w", ErrCorruptRecord, err)
	}
	return s, nil
}

// opContext carries the context of the operation in progress to the PSK
// resolver, which package group calls without one.
type opContext struct{ ctx context.Context }

func (o *opContext) get() context.Context {
	if o == nil || o.ctx == nil {
		return context.Background()
	}
	return o.ctx
}

// withStoredPSKs returns cfg's resolver extended with the store's external
// PSKs: Config.PSKs first, then the store.
func withStoredPSKs(store storage.Backend, oc *opContext, first group.PSKResolver) group.PSKResolver {
	return func(id *wire.PreSharedKeyID) (secret.Secret, error) {
		if first != nil {
			s, err := first(id)
			if err == nil || !errors.Is(err, group.ErrUnknownPSK) {
				return s, err
			}
		}
		if id.PSKType != wire.PSKTypeExternal {
			return secret.Secret{}, group.ErrUnknownPSK
		}
		return loadPSK(oc.get(), store, id.PSKID)
	}
}
