// Package vectors reads files in the mls-implementations test-vector
// format (JSON arrays of cases whose byte strings are hex) for package
// conformance and the protocol packages' tests.
package vectors

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
)

// Hex is a byte string written in hex; JSON null is nil.
type Hex []byte

// UnmarshalJSON decodes a hex string.
func (h *Hex) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// Load reads the JSON array of cases in the file at path. An empty array
// is an error: a vector file that checks nothing must not pass.
func Load[T any](path string) ([]T, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cases []T
	if err := json.Unmarshal(data, &cases); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no cases", path)
	}
	return cases, nil
}
