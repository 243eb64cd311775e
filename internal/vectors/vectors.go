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

// PassiveClientCase is one case of the passive-client vector files
// ("Passive Client Scenarios" of the test-vector format). It lives here
// rather than in package conformance so that mls/group's tests can read
// the files without importing the package that imports mls/group.
type PassiveClientCase struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID Hex `json:"psk_id"`
		PSK   Hex `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                Hex `json:"key_package"`
	SignaturePriv             Hex `json:"signature_priv"`
	EncryptionPriv            Hex `json:"encryption_priv"`
	InitPriv                  Hex `json:"init_priv"`
	Welcome                   Hex `json:"welcome"`
	RatchetTree               Hex `json:"ratchet_tree"`
	InitialEpochAuthenticator Hex `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []Hex `json:"proposals"`
		Commit             Hex   `json:"commit"`
		EpochAuthenticator Hex   `json:"epoch_authenticator"`
	} `json:"epochs"`
}
