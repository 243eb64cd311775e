package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// verifyMessages checks one messages.json case: every field decodes with
// its structure and re-encodes to the same bytes, and each MLSMessage has
// the wire format (and, for public messages, the content type) its field
// names.
func verifyMessages(raw json.RawMessage) error {
	var tc struct {
		MLSWelcome                     HexBytes `json:"mls_welcome"`
		MLSGroupInfo                   HexBytes `json:"mls_group_info"`
		MLSKeyPackage                  HexBytes `json:"mls_key_package"`
		RatchetTree                    HexBytes `json:"ratchet_tree"`
		GroupSecrets                   HexBytes `json:"group_secrets"`
		AddProposal                    HexBytes `json:"add_proposal"`
		UpdateProposal                 HexBytes `json:"update_proposal"`
		RemoveProposal                 HexBytes `json:"remove_proposal"`
		PreSharedKeyProposal           HexBytes `json:"pre_shared_key_proposal"`
		ReInitProposal                 HexBytes `json:"re_init_proposal"`
		ExternalInitProposal           HexBytes `json:"external_init_proposal"`
		GroupContextExtensionsProposal HexBytes `json:"group_context_extensions_proposal"`
		Commit                         HexBytes `json:"commit"`
		PublicMessageApplication       HexBytes `json:"public_message_application"`
		PublicMessageProposal          HexBytes `json:"public_message_proposal"`
		PublicMessageCommit            HexBytes `json:"public_message_commit"`
		PrivateMessage                 HexBytes `json:"private_message"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	checks := []struct {
		field string
		in    []byte
		check func(field string, b []byte) error
	}{
		{"mls_welcome", tc.MLSWelcome, msgMLSMessage(wire.WireFormatWelcome, 0)},
		{"mls_group_info", tc.MLSGroupInfo, msgMLSMessage(wire.WireFormatGroupInfo, 0)},
		{"mls_key_package", tc.MLSKeyPackage, msgMLSMessage(wire.WireFormatKeyPackage, 0)},
		{"ratchet_tree", tc.RatchetTree, msgRoundTrip[wire.RatchetTree]},
		{"group_secrets", tc.GroupSecrets, msgRoundTrip[wire.GroupSecrets]},
		{"add_proposal", tc.AddProposal, msgRoundTrip[wire.Add]},
		{"update_proposal", tc.UpdateProposal, msgRoundTrip[wire.Update]},
		{"remove_proposal", tc.RemoveProposal, msgRoundTrip[wire.Remove]},
		{"pre_shared_key_proposal", tc.PreSharedKeyProposal, msgRoundTrip[wire.PreSharedKey]},
		{"re_init_proposal", tc.ReInitProposal, msgRoundTrip[wire.ReInit]},
		{"external_init_proposal", tc.ExternalInitProposal, msgRoundTrip[wire.ExternalInit]},
		{"group_context_extensions_proposal", tc.GroupContextExtensionsProposal, msgRoundTrip[wire.GroupContextExtensions]},
		{"commit", tc.Commit, msgRoundTrip[wire.Commit]},
		{"public_message_application", tc.PublicMessageApplication, msgMLSMessage(wire.WireFormatPublicMessage, wire.ContentTypeApplication)},
		{"public_message_proposal", tc.PublicMessageProposal, msgMLSMessage(wire.WireFormatPublicMessage, wire.ContentTypeProposal)},
		{"public_message_commit", tc.PublicMessageCommit, msgMLSMessage(wire.WireFormatPublicMessage, wire.ContentTypeCommit)},
		{"private_message", tc.PrivateMessage, msgMLSMessage(wire.WireFormatPrivateMessage, 0)},
	}
	for _, c := range checks {
		if c.in == nil {
			return fmt.Errorf("%w: %s: missing", ErrMismatch, c.field)
		}
		if err := c.check(c.field, c.in); err != nil {
			return err
		}
	}
	return nil
}

// msgRoundTrip decodes b as a T and checks that it re-encodes to b.
func msgRoundTrip[T any, P interface {
	*T
	codec.Marshaler
	codec.Unmarshaler
}](field string, b []byte) error {
	_, err := msgDecodeReencode[T, P](field, b)
	return err
}

func msgDecodeReencode[T any, P interface {
	*T
	codec.Marshaler
	codec.Unmarshaler
}](field string, b []byte) (*T, error) {
	v := P(new(T))
	if err := codec.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s: decoding: %w", field, err)
	}
	out, err := codec.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: encoding: %w", field, err)
	}
	if err := expectEqual(field+" re-encoded", out, b); err != nil {
		return nil, err
	}
	return (*T)(v), nil
}

// msgMLSMessage round-trips an MLSMessage and checks its wire format and, if
// ct is not 0, the content type of the PublicMessage it carries.
func msgMLSMessage(wf wire.WireFormat, ct wire.ContentType) func(string, []byte) error {
	return func(field string, b []byte) error {
		m, err := msgDecodeReencode[wire.MLSMessage](field, b)
		if err != nil {
			return err
		}
		if m.WireFormat != wf {
			return fmt.Errorf("%w: %s: wire format %v, want %v", ErrMismatch, field, m.WireFormat, wf)
		}
		if ct != 0 && m.PublicMessage.Content.ContentType != ct {
			return fmt.Errorf("%w: %s: content type %v, want %v", ErrMismatch, field, m.PublicMessage.Content.ContentType, ct)
		}
		return nil
	}
}
