package engine_test

import (
	"context"
	"testing"

	"github.com/mlsengine/mlsengine/engine"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/group"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/storage/memory"
)

// TestHasPSK: external PSKs from the store and from Config.PSKs, and the
// resumption PSKs the group keeps (§8.6); nothing else.
func TestHasPSK(t *testing.T) {
	ctx := context.Background()
	suite, _ := ciphersuite.Lookup(engine.DefaultSuite)
	key, err := suite.GenerateSigningKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New()
	cfg := &engine.Config{}
	cfg.PSKs = func(id *wire.PreSharedKeyID) (secret.Secret, error) {
		if id.PSKType == wire.PSKTypeExternal && string(id.PSKID) == "configured" {
			return secret.Copy([]byte("0123456789abcdef")), nil
		}
		return secret.Secret{}, group.ErrUnknownPSK
	}
	g, err := engine.NewGroup(ctx, store, key, cfg, wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte("a")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.SelfUpdate(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := engine.StorePSK(ctx, store, []byte("stored"), secret.Copy([]byte("fedcba9876543210"))); err != nil {
		t.Fatal(err)
	}
	ext := func(id string) *wire.PreSharedKeyID {
		return &wire.PreSharedKeyID{PSKType: wire.PSKTypeExternal, PSKID: []byte(id)}
	}
	res := func(gid []byte, epoch uint64) *wire.PreSharedKeyID {
		return &wire.PreSharedKeyID{PSKType: wire.PSKTypeResumption, Usage: wire.ResumptionPSKUsageApplication, PSKGroupID: gid, PSKEpoch: epoch}
	}
	for _, c := range []struct {
		name string
		id   *wire.PreSharedKeyID
		want bool
	}{
		{"stored", ext("stored"), true},
		{"configured", ext("configured"), true},
		{"unknown", ext("unknown"), false},
		{"current epoch", res(g.GroupID(), 1), true},
		{"future epoch", res(g.GroupID(), 2), false},
		{"other group", res([]byte("other"), 1), false},
		{"nil", nil, false},
	} {
		got, err := g.HasPSK(ctx, c.id)
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	// A reloaded handle resolves the same: the store is read again.
	again, err := engine.LoadGroup(ctx, store, g.GroupID(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := again.HasPSK(ctx, ext("stored")); !ok || err != nil {
		t.Fatalf("after a reload: %v, %v", ok, err)
	}
}
