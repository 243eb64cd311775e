package group_test

import (
	"path/filepath"
	"testing"

	"github.com/mlsengine/mlsengine/conformance"
)

// TestOfficialVectors replays the passive-client-*.json files
// (mls-implementations test-vectors.md, "Passive Client Scenarios") through
// the conformance package, which joins from each case's Welcome, processes
// every epoch and compares the epoch authenticators; TestPassiveClientRestore
// does it again with the group reloaded before every message.
func TestOfficialVectors(t *testing.T) {
	for _, f := range passiveClientFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := conformance.CheckFile(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}
