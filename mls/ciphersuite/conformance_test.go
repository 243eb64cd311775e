package ciphersuite_test

import (
	"testing"

	"github.com/mlsengine/mlsengine/conformance"
)

// TestCryptoBasicsVectors replays crypto-basics.json (mls-implementations
// test-vectors.md, "Crypto Basics") through the conformance package, which
// runs every check the format lists; TestCryptoBasicsKeys checks what it
// does not.
func TestCryptoBasicsVectors(t *testing.T) {
	if err := conformance.CheckFile("../../testdata/vectors/crypto-basics.json"); err != nil {
		t.Fatal(err)
	}
}
