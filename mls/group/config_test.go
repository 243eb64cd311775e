package group

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

// TestConfigRecord checks that every persisted field of Config survives
// its join-config record (the layout is persist's, tested there), and
// that a bad record is corrupt state.
func TestConfigRecord(t *testing.T) {
	c := Config{MaxPastEpochs: 3, NumberOfResumptionPSKs: 300, OutOfOrderTolerance: -1, MaxForwardDistance: 70000,
		PaddingBlock: 32, EncryptHandshake: true, RatchetTreeExtension: true, KeyPackageLifetime: -time.Hour, MaxLeafLifetime: math.MaxInt64}
	var got Config
	if err := got.unmarshal(c.marshal()); err != nil || !reflect.DeepEqual(got, c) {
		t.Errorf("config %+v: got %+v, %v", c, got, err)
	}
	if err := got.unmarshal([]byte{0x90}); !errors.Is(err, ErrCorruptState) {
		t.Errorf("empty array: %v", err)
	}
}
