package treekem_test

import (
	"testing"

	"github.com/mlsengine/mlsengine/conformance"
)

// TestOfficialVectors replays treekem.json (mls-implementations
// test-vectors.md, "TreeKEM") through the conformance package, which runs
// every check the format lists; TestVectors checks what it does not.
func TestOfficialVectors(t *testing.T) {
	if err := conformance.CheckFile("../../testdata/vectors/treekem.json"); err != nil {
		t.Fatal(err)
	}
}
