package ratchettree

import (
	"encoding/binary"

	"github.com/mlsengine/mlsengine/mls/wire"
)

// The tree keeps each leaf as its LeafNode encoding (§7.2) rather than as a
// decoded wire.LeafNode: the encoding is what the tree hash (§7.8), the
// ratchet_tree extension (§12.4.3.3) and the leaf signature cover, and it is
// about a third of the size of the decoded value. The few fields the tree
// itself needs are read from the encoding in place, without allocating.

// leafView holds the fields of an encoded LeafNode that the tree reads.
// The slices alias the encoding.
type leafView struct {
	encryptionKey  []byte
	signatureKey   []byte
	credentialType wire.CredentialType
	capCredentials []byte // body of capabilities.credentials: uint16s
	source         wire.LeafNodeSource
	parentHash     []byte // commit source only
}

// viewLeaf reads the fields of leafView from an encoded LeafNode, stopping
// after the leaf_node_source select. The encoding has been checked by the
// wire decoder, so ok is false only for a bug.
func viewLeaf(enc []byte) (v leafView, ok bool) {
	s := skim{b: enc, ok: true}
	v.encryptionKey = s.varBytes()
	v.signatureKey = s.varBytes()
	v.credentialType = wire.CredentialType(s.uint16())
	// basic is opaque identity<V>; x509 is Certificate certificates<V>.
	// Either way one varint-prefixed field follows (the wire decoder
	// rejects other credential types).
	s.varBytes()
	for range 4 { // versions, cipher_suites, extensions, proposals
		s.varBytes()
	}
	v.capCredentials = s.varBytes()
	v.source = wire.LeafNodeSource(s.uint8())
	switch v.source {
	case wire.LeafNodeSourceKeyPackage:
		s.take(16)
	case wire.LeafNodeSourceCommit:
		v.parentHash = s.varBytes()
	}
	return v, s.ok
}

// supportsCredential reports whether the capabilities credentials body of
// a leaf lists t.
func supportsCredential(capCredentials []byte, t wire.CredentialType) bool {
	return has16(capCredentials, uint16(t))
}

// leafKeys returns the encryption and signature keys of an encoded LeafNode
// (its first two fields), aliasing the encoding.
func leafKeys(enc []byte) (encryptionKey, signatureKey []byte) {
	s := skim{b: enc, ok: true}
	encryptionKey = s.varBytes()
	signatureKey = s.varBytes()
	return encryptionKey, signatureKey
}

// leafFields holds every field of an encoded LeafNode that validation
// (§7.3) reads, as slices of the encoding: lists are the bodies of their
// vectors.
type leafFields struct {
	leafView
	credential   []byte // the whole Credential
	versions     []byte // uint16s
	cipherSuites []byte // uint16s
	extTypes     []byte // capabilities.extensions: uint16s
	proposals    []byte // uint16s
	lifetime     wire.Lifetime
	extensions   []byte // LeafNode.extensions body: Extension structs
	tbsLen       int    // length of the fields the signature covers
	signature    []byte
}

// parseLeaf reads every field of an encoded LeafNode without allocating.
// ok is false if enc is not exactly one LeafNode in the layout of §7.2; it
// does not re-check what package wire enforces on decoding (minimal
// varints, known enum values, unique extension types).
func parseLeaf(enc []byte) (f leafFields, ok bool) {
	s := skim{b: enc, ok: true}
	f.encryptionKey = s.varBytes()
	f.signatureKey = s.varBytes()
	credStart := len(enc) - len(s.b)
	f.credentialType = wire.CredentialType(s.uint16())
	s.varBytes() // identity or certificates
	f.credential = enc[credStart : len(enc)-len(s.b)]
	f.versions = s.varBytes()
	f.cipherSuites = s.varBytes()
	f.extTypes = s.varBytes()
	f.proposals = s.varBytes()
	f.capCredentials = s.varBytes()
	f.source = wire.LeafNodeSource(s.uint8())
	switch f.source {
	case wire.LeafNodeSourceKeyPackage:
		if lt := s.take(16); lt != nil {
			f.lifetime.NotBefore = binary.BigEndian.Uint64(lt)
			f.lifetime.NotAfter = binary.BigEndian.Uint64(lt[8:])
		}
	case wire.LeafNodeSourceCommit:
		f.parentHash = s.varBytes()
	}
	f.extensions = s.varBytes()
	f.tbsLen = len(enc) - len(s.b)
	f.signature = s.varBytes()
	return f, s.ok && len(s.b) == 0 && len(f.versions)%2 == 0 && len(f.cipherSuites)%2 == 0 &&
		len(f.extTypes)%2 == 0 && len(f.proposals)%2 == 0 && len(f.capCredentials)%2 == 0
}

// has16 reports whether a body of big-endian uint16s holds v.
func has16(list []byte, v uint16) bool {
	for i := 0; i+1 < len(list); i += 2 {
		if binary.BigEndian.Uint16(list[i:]) == v {
			return true
		}
	}
	return false
}

// eachExtensionType calls f with the type of each Extension in the body of
// an extension list, stopping at the first error.
func eachExtensionType(body []byte, f func(wire.ExtensionType) error) error {
	s := skim{b: body, ok: true}
	for s.ok && len(s.b) > 0 {
		t := wire.ExtensionType(s.uint16())
		s.varBytes()
		if !s.ok {
			break
		}
		if err := f(t); err != nil {
			return err
		}
	}
	return nil
}
