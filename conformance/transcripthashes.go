package conformance

import (
	"encoding/json"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
	"github.com/mlsengine/mlsengine/mls/wire"
)

// verifyTranscriptHashes checks that authenticated_content is a Commit whose
// confirmation tag is valid for confirmed_transcript_hash_after, and that
// both transcript hashes follow from interim_transcript_hash_before (§8.2).
func verifyTranscriptHashes(raw json.RawMessage) error {
	var tc struct {
		CipherSuite     uint16   `json:"cipher_suite"`
		ConfirmationKey HexBytes `json:"confirmation_key"`
		Content         HexBytes `json:"authenticated_content"`
		InterimBefore   HexBytes `json:"interim_transcript_hash_before"`
		ConfirmedAfter  HexBytes `json:"confirmed_transcript_hash_after"`
		InterimAfter    HexBytes `json:"interim_transcript_hash_after"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	ac, err := wire.Unmarshal[wire.AuthenticatedContent](tc.Content)
	if err != nil {
		return fmt.Errorf("authenticated_content: %w", err)
	}
	if ac.Content.ContentType != wire.ContentTypeCommit {
		return fmt.Errorf("%w: authenticated_content is not a commit", ErrMismatch)
	}
	key := secret.Copy(tc.ConfirmationKey)
	defer key.Clear()
	if !keyschedule.VerifyConfirmationTag(suite, key, tc.ConfirmedAfter, ac.Auth.ConfirmationTag) {
		return fmt.Errorf("%w: confirmation_tag", ErrMismatch)
	}
	input, err := codec.Marshal(ac.ConfirmedTranscriptHashInput())
	if err != nil {
		return err
	}
	confirmed, err := keyschedule.ConfirmedTranscriptHash(suite, tc.InterimBefore, input)
	if err != nil {
		return err
	}
	if err := expectEqual("confirmed_transcript_hash_after", confirmed, tc.ConfirmedAfter); err != nil {
		return err
	}
	interim, err := keyschedule.InterimTranscriptHash(suite, confirmed, ac.Auth.ConfirmationTag)
	if err != nil {
		return err
	}
	return expectEqual("interim_transcript_hash_after", interim, tc.InterimAfter)
}
