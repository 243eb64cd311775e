package worker

import (
	"context"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/memory"
)

func TestLastApplied(t *testing.T) {
	ctx := context.Background()
	suite, _ := ciphersuite.Lookup(engine.DefaultSuite)
	k, err := suite.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New()
	h, err := engine.NewGroup(ctx, store, k, &engine.Config{GroupID: []byte("g")}, wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if n := LastApplied(h); n != 0 {
		t.Fatalf("no cursor: LastApplied %d", n)
	}
	if err := setCursor(h, &cursor{Seq: 42}); err != nil {
		t.Fatal(err)
	}
	if err := h.StoreCursor(ctx); err != nil {
		t.Fatal(err)
	}
	h, err = engine.LoadGroup(ctx, store, []byte("g"))
	if err != nil {
		t.Fatal(err)
	}
	if n := LastApplied(h); n != 42 {
		t.Fatalf("LastApplied %d after storing 42", n)
	}
}
