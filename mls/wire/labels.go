package wire

import "github.com/mlsengine/mlsengine/mls/codec"

// The structures below are the labelled inputs of MLS's cryptographic
// functions (§5.1.2, §5.1.3, §5.2, §8). Their Label fields hold the full
// label, "MLS 1.0 " included where the RFC prepends it.

// SignContent is the input of SignWithLabel and VerifyWithLabel (§5.1.2).
//
//	struct {
//	    opaque label<V>;
//	    opaque content<V>;
//	} SignContent;
type SignContent struct {
	Label   []byte
	Content []byte
}

// MarshalMLS encodes s.
func (s *SignContent) MarshalMLS(w *codec.Writer) {
	w.VarBytes(s.Label)
	w.VarBytes(s.Content)
}

// UnmarshalMLS decodes a SignContent.
func (s *SignContent) UnmarshalMLS(r *codec.Reader) {
	*s = SignContent{Label: r.VarBytes(), Content: r.VarBytes()}
}

// EncryptContext is the HPKE info of EncryptWithLabel and DecryptWithLabel
// (§5.1.3).
//
//	struct {
//	  opaque label<V>;
//	  opaque context<V>;
//	} EncryptContext;
type EncryptContext struct {
	Label   []byte
	Context []byte
}

// MarshalMLS encodes c.
func (c *EncryptContext) MarshalMLS(w *codec.Writer) {
	w.VarBytes(c.Label)
	w.VarBytes(c.Context)
}

// UnmarshalMLS decodes an EncryptContext.
func (c *EncryptContext) UnmarshalMLS(r *codec.Reader) {
	*c = EncryptContext{Label: r.VarBytes(), Context: r.VarBytes()}
}

// RefHashInput is the input of RefHash (§5.2).
//
//	struct {
//	  opaque label<V>;
//	  opaque value<V>;
//	} RefHashInput;
type RefHashInput struct {
	Label []byte
	Value []byte
}

// MarshalMLS encodes in.
func (in *RefHashInput) MarshalMLS(w *codec.Writer) {
	w.VarBytes(in.Label)
	w.VarBytes(in.Value)
}

// UnmarshalMLS decodes a RefHashInput.
func (in *RefHashInput) UnmarshalMLS(r *codec.Reader) {
	*in = RefHashInput{Label: r.VarBytes(), Value: r.VarBytes()}
}

// KDFLabel is the info of ExpandWithLabel (§8).
//
//	struct {
//	    uint16 length;
//	    opaque label<V>;
//	    opaque context<V>;
//	} KDFLabel;
type KDFLabel struct {
	Length  uint16
	Label   []byte
	Context []byte
}

// MarshalMLS encodes l.
func (l *KDFLabel) MarshalMLS(w *codec.Writer) {
	w.Uint16(l.Length)
	w.VarBytes(l.Label)
	w.VarBytes(l.Context)
}

// UnmarshalMLS decodes a KDFLabel.
func (l *KDFLabel) UnmarshalMLS(r *codec.Reader) {
	*l = KDFLabel{Length: r.Uint16(), Label: r.VarBytes(), Context: r.VarBytes()}
}
