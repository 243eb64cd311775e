package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// Certificate is one DER-encoded X.509 certificate of a chain (§5.3).
//
//	struct {
//	    opaque cert_data<V>;
//	} Certificate;
type Certificate struct {
	CertData []byte
}

// MarshalMLS encodes c.
func (c *Certificate) MarshalMLS(w *codec.Writer) { w.VarBytes(c.CertData) }

// UnmarshalMLS decodes a Certificate.
func (c *Certificate) UnmarshalMLS(r *codec.Reader) {
	*c = Certificate{CertData: r.VarBytes()}
}

// Credential binds identities to a signature key (§5.3). Credential types
// other than basic and x509 have no known layout and are rejected with
// ErrUnknownValue.
//
//	struct {
//	    CredentialType credential_type;
//	    select (Credential.credential_type) {
//	        case basic:
//	            opaque identity<V>;
//
//	        case x509:
//	            Certificate certificates<V>;
//	    };
//	} Credential;
type Credential struct {
	CredentialType CredentialType
	Identity       []byte        // basic
	Certificates   []Certificate // x509, end-entity certificate first
}

// MarshalMLS encodes c.
func (c *Credential) MarshalMLS(w *codec.Writer) {
	w.Uint16(uint16(c.CredentialType))
	switch c.CredentialType {
	case CredentialTypeBasic:
		w.VarBytes(c.Identity)
	case CredentialTypeX509:
		writeList(w, c.Certificates)
	}
}

// UnmarshalMLS decodes a Credential.
func (c *Credential) UnmarshalMLS(r *codec.Reader) {
	*c = Credential{CredentialType: CredentialType(r.Uint16())}
	switch c.CredentialType {
	case CredentialTypeBasic:
		c.Identity = r.VarBytes()
	case CredentialTypeX509:
		c.Certificates = readList[Certificate](r)
	default:
		unknown(r, "credential type", c.CredentialType)
	}
}

// Equal reports whether c and o encode identically.
func (c *Credential) Equal(o *Credential) bool {
	return string(encode(c)) == string(encode(o))
}
