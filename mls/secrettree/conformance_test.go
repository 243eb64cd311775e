package secrettree_test

import (
	"testing"

	"github.com/mlsengine/mlsengine/conformance"
)

// TestOfficialVectors replays secret-tree.json (mls-implementations
// test-vectors.md, "Secret Tree") through the conformance package, which
// checks the sender data and every listed key and nonce; TestVectors checks
// what it does not.
func TestOfficialVectors(t *testing.T) {
	if err := conformance.CheckFile("../../testdata/vectors/secret-tree.json"); err != nil {
		t.Fatal(err)
	}
}
