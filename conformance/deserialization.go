package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/codec"
)

// verifyDeserialization checks that a vector header decodes to the given
// length and re-encodes to the same bytes.
func verifyDeserialization(raw json.RawMessage) error {
	var tc struct {
		Header HexBytes `json:"vlbytes_header"`
		Length uint32   `json:"length"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	r := codec.NewReader(tc.Header)
	n := r.Varint()
	if err := r.Finish(); err != nil {
		return err
	}
	if n != tc.Length {
		return fmt.Errorf("%w: length %d, want %d", ErrMismatch, n, tc.Length)
	}
	var w codec.Writer
	w.Varint(int(n))
	return expectEqual("re-encoded header", w.Bytes(), tc.Header)
}
