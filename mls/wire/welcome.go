package wire

import (
	"bytes"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// PathSecret is the path secret of the lowest node shared by the committer's
// and the new member's direct paths (§12.4.3.1).
//
//	struct {
//	  opaque path_secret<V>;
//	} PathSecret;
type PathSecret struct {
	PathSecret secret.Secret
}

// MarshalMLS encodes p.
func (p *PathSecret) MarshalMLS(w *codec.Writer) { w.VarBytes(p.PathSecret.Bytes()) }

// UnmarshalMLS decodes a PathSecret.
func (p *PathSecret) UnmarshalMLS(r *codec.Reader) {
	*p = PathSecret{PathSecret: secret.New(r.VarBytes())}
}

// GroupSecrets is the plaintext a Welcome encrypts to each new member
// (§12.4.3.1). Its encoding holds secrets: encrypt it, never log it.
//
//	struct {
//	  opaque joiner_secret<V>;
//	  optional<PathSecret> path_secret;
//	  PreSharedKeyID psks<V>;
//	} GroupSecrets;
type GroupSecrets struct {
	JoinerSecret secret.Secret
	PathSecret   *PathSecret
	PSKs         []PreSharedKeyID
}

// MarshalMLS encodes gs.
func (gs *GroupSecrets) MarshalMLS(w *codec.Writer) {
	w.VarBytes(gs.JoinerSecret.Bytes())
	w.Optional(gs.PathSecret != nil, func(w *codec.Writer) { gs.PathSecret.MarshalMLS(w) })
	writeList(w, gs.PSKs)
}

// UnmarshalMLS decodes a GroupSecrets.
func (gs *GroupSecrets) UnmarshalMLS(r *codec.Reader) {
	*gs = GroupSecrets{JoinerSecret: secret.New(r.VarBytes())}
	r.Optional(func(r *codec.Reader) {
		gs.PathSecret = new(PathSecret)
		gs.PathSecret.UnmarshalMLS(r)
	})
	gs.PSKs = readList[PreSharedKeyID](r)
}

// EncryptedGroupSecrets is a GroupSecrets encrypted to the init key of the
// KeyPackage that NewMember references (§12.4.3.1).
//
//	struct {
//	  KeyPackageRef new_member;
//	  HPKECiphertext encrypted_group_secrets;
//	} EncryptedGroupSecrets;
type EncryptedGroupSecrets struct {
	NewMember             []byte
	EncryptedGroupSecrets HPKECiphertext
}

// MarshalMLS encodes e.
func (e *EncryptedGroupSecrets) MarshalMLS(w *codec.Writer) {
	w.VarBytes(e.NewMember)
	e.EncryptedGroupSecrets.MarshalMLS(w)
}

// UnmarshalMLS decodes an EncryptedGroupSecrets.
func (e *EncryptedGroupSecrets) UnmarshalMLS(r *codec.Reader) {
	*e = EncryptedGroupSecrets{NewMember: r.VarBytes()}
	e.EncryptedGroupSecrets.UnmarshalMLS(r)
}

// Welcome brings new members into a group (§12.4.3.1).
//
//	struct {
//	  CipherSuite cipher_suite;
//	  EncryptedGroupSecrets secrets<V>;
//	  opaque encrypted_group_info<V>;
//	} Welcome;
type Welcome struct {
	CipherSuite        uint16
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// MarshalMLS encodes wm.
func (wm *Welcome) MarshalMLS(w *codec.Writer) {
	w.Uint16(wm.CipherSuite)
	writeList(w, wm.Secrets)
	w.VarBytes(wm.EncryptedGroupInfo)
}

// UnmarshalMLS decodes a Welcome.
func (wm *Welcome) UnmarshalMLS(r *codec.Reader) {
	*wm = Welcome{
		CipherSuite:        r.Uint16(),
		Secrets:            readList[EncryptedGroupSecrets](r),
		EncryptedGroupInfo: r.VarBytes(),
	}
}

// Find returns the entry of wm.Secrets for the KeyPackage whose
// KeyPackageRef is ref, or nil.
func (wm *Welcome) Find(ref []byte) *EncryptedGroupSecrets {
	for i := range wm.Secrets {
		if bytes.Equal(wm.Secrets[i].NewMember, ref) {
			return &wm.Secrets[i]
		}
	}
	return nil
}
