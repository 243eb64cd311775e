package keyschedule_test

import (
	"testing"

	"github.com/mlsengine/mlsengine/conformance"
)

// TestOfficialVectors replays key-schedule.json and psk_secret.json
// (mls-implementations test-vectors.md, "Key Schedule" and "Pre-Shared
// Keys") through the conformance package, which checks every value they
// list; keyschedule_test.go checks what it does not.
func TestOfficialVectors(t *testing.T) {
	for _, name := range []string{"key-schedule.json", "psk_secret.json"} {
		t.Run(name, func(t *testing.T) {
			if err := conformance.CheckFile("../../testdata/vectors/" + name); err != nil {
				t.Fatal(err)
			}
		})
	}
}
