package framing_test

import (
	"testing"

	"github.com/mlsengine/mlsengine/conformance"
)

// TestOfficialVectors replays message-protection.json (mls-implementations
// test-vectors.md, "Message Protection") through the conformance package,
// which runs every check the format lists; TestVectors checks what it does
// not.
func TestOfficialVectors(t *testing.T) {
	if err := conformance.CheckFile("../../testdata/vectors/message-protection.json"); err != nil {
		t.Fatal(err)
	}
}
