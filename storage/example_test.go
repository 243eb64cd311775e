package storage_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// A group is created, advanced by one handle, and a second handle loaded
// before the change is refused; it reloads and retries.
func Example() {
	ctx := context.Background()
	b := memory.New()
	id := []byte("group-1")
	scope := storage.GroupScope(id)
	key := func(c storage.Class, name string) storage.Key {
		return storage.Key{Scope: scope, Class: c, Name: name}
	}

	// Create the group: Version 0 means it must not exist yet.
	v, err := b.Apply(ctx, &storage.Unit{Scope: scope, Puts: []storage.Record{
		{Key: key(storage.Public, "context"), Value: []byte("epoch 0")},
		{Key: key(storage.KeyMaterial, "epoch/0/secrets"), Value: []byte("s0")},
	}})
	fmt.Println("created:", err)

	// Two handles load the same version.
	h1, _ := b.Load(ctx, id)
	h2, _ := b.Load(ctx, id)
	fmt.Println("same version:", h1.Version == v && h2.Version == v)

	// The first moves to epoch 1: new secrets under a new name, the old ones
	// deleted in the same unit.
	nextEpoch := func(version uint64, e int) (uint64, error) {
		return b.Apply(ctx, &storage.Unit{Scope: scope, Version: version,
			Puts: []storage.Record{
				{Key: key(storage.Public, "context"), Value: fmt.Appendf(nil, "epoch %d", e)},
				{Key: key(storage.KeyMaterial, fmt.Sprintf("epoch/%d/secrets", e)), Value: fmt.Appendf(nil, "s%d", e)},
			},
			Deletes: []storage.Key{key(storage.KeyMaterial, fmt.Sprintf("epoch/%d/secrets", e-1))},
		})
	}
	_, err = nextEpoch(h1.Version, 1)
	fmt.Println("handle 1 commits:", err)

	// The second handle is stale: nothing is applied.
	_, err = nextEpoch(h2.Version, 1)
	fmt.Println("handle 2 conflicts:", errors.Is(err, storage.ErrConflict))

	// It reloads and redoes its operation on the new state.
	h2, _ = b.Load(ctx, id)
	ctxValue, _ := h2.Find(storage.Public, "context")
	fmt.Println("reloaded:", string(ctxValue))
	_, err = nextEpoch(h2.Version, 2)
	fmt.Println("handle 2 commits:", err)

	g, _ := b.Load(ctx, id)
	for _, r := range g.Records {
		fmt.Println(r.Key.Class, r.Key.Name)
	}
	g.ClearKeyMaterial()

	_, err = b.Load(ctx, []byte("no such group"))
	fmt.Println("missing:", errors.Is(err, storage.ErrGroupNotFound))

	// Output:
	// created: <nil>
	// same version: true
	// handle 1 commits: <nil>
	// handle 2 conflicts: true
	// reloaded: epoch 1
	// handle 2 commits: <nil>
	// public context
	// key-material epoch/2/secrets
	// missing: true
}
