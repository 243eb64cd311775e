package conformance

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/keyschedule"
	"github.com/mlsengine/mlsengine/mls/secret"
)

// encodeGroupContext encodes a GroupContext with empty extensions (RFC 9420
// §8.1) without depending on the wire package:
//
//	uint16 version = mls10 (1); uint16 cipher_suite; opaque group_id<V>;
//	uint64 epoch; opaque tree_hash<V>; opaque confirmed_transcript_hash<V>;
//	Extension extensions<V>;
func encodeGroupContext(suite uint16, groupID []byte, epoch uint64, treeHash, confirmedTranscriptHash []byte) ([]byte, error) {
	var w codec.Writer
	w.Uint16(1)
	w.Uint16(suite)
	w.VarBytes(groupID)
	w.Uint64(epoch)
	w.VarBytes(treeHash)
	w.VarBytes(confirmedTranscriptHash)
	w.VarBytes(nil)
	return w.Result()
}

// expectSecret compares a derived secret with the expected bytes in
// constant time and, like expectEqual, never prints either.
func expectSecret(field string, got secret.Secret, want []byte) error {
	if !got.EqualBytes(want) {
		return fmt.Errorf("%w: %s", ErrMismatch, field)
	}
	return nil
}

// verifyKeySchedule chains the key schedule through every epoch of a case
// (§8), starting from initial_init_secret. For each epoch it checks the
// encoded GroupContext, every derived secret, external_pub
// (KEM.DeriveKeyPair(external_secret), §8) and the exporter output (§8.5).
func verifyKeySchedule(raw json.RawMessage) error {
	var tc struct {
		CipherSuite       uint16   `json:"cipher_suite"`
		GroupID           HexBytes `json:"group_id"`
		InitialInitSecret HexBytes `json:"initial_init_secret"`
		Epochs            []struct {
			TreeHash                HexBytes `json:"tree_hash"`
			CommitSecret            HexBytes `json:"commit_secret"`
			PSKSecret               HexBytes `json:"psk_secret"`
			ConfirmedTranscriptHash HexBytes `json:"confirmed_transcript_hash"`
			GroupContext            HexBytes `json:"group_context"`
			JoinerSecret            HexBytes `json:"joiner_secret"`
			WelcomeSecret           HexBytes `json:"welcome_secret"`
			InitSecret              HexBytes `json:"init_secret"`
			SenderDataSecret        HexBytes `json:"sender_data_secret"`
			EncryptionSecret        HexBytes `json:"encryption_secret"`
			ExporterSecret          HexBytes `json:"exporter_secret"`
			EpochAuthenticator      HexBytes `json:"epoch_authenticator"`
			ExternalSecret          HexBytes `json:"external_secret"`
			ConfirmationKey         HexBytes `json:"confirmation_key"`
			MembershipKey           HexBytes `json:"membership_key"`
			ResumptionPSK           HexBytes `json:"resumption_psk"`
			ExternalPub             HexBytes `json:"external_pub"`
			Exporter                struct {
				Label   string   `json:"label"`
				Context HexBytes `json:"context"`
				Length  int      `json:"length"`
				Secret  HexBytes `json:"secret"`
			} `json:"exporter"`
		} `json:"epochs"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	init, err := keyschedule.NewInitSecret(suite, secret.Copy(tc.InitialInitSecret))
	if err != nil {
		return err
	}
	defer func() { init.Clear() }()
	for n, e := range tc.Epochs {
		gc, err := encodeGroupContext(tc.CipherSuite, tc.GroupID, uint64(n), e.TreeHash, e.ConfirmedTranscriptHash)
		if err != nil {
			return err
		}
		if err := expectEqual(fmt.Sprintf("epoch %d group_context", n), gc, e.GroupContext); err != nil {
			return err
		}
		epoch, err := deriveEpoch(suite, init, gc, e.CommitSecret, e.PSKSecret, e.JoinerSecret, e.WelcomeSecret)
		if err != nil {
			return fmt.Errorf("epoch %d: %w", n, err)
		}
		checks := []struct {
			name string
			got  secret.Secret
			want []byte
		}{
			{"init_secret", epoch.InitSecret(), e.InitSecret},
			{"sender_data_secret", epoch.SenderDataSecret(), e.SenderDataSecret},
			{"encryption_secret", epoch.EncryptionSecret(), e.EncryptionSecret},
			{"exporter_secret", epoch.ExporterSecret(), e.ExporterSecret},
			{"epoch_authenticator", epoch.EpochAuthenticator(), e.EpochAuthenticator},
			{"external_secret", epoch.ExternalSecret(), e.ExternalSecret},
			{"confirmation_key", epoch.ConfirmationKey(), e.ConfirmationKey},
			{"membership_key", epoch.MembershipKey(), e.MembershipKey},
			{"resumption_psk", epoch.ResumptionPSK(), e.ResumptionPSK},
		}
		var errs []error
		for _, c := range checks {
			errs = append(errs, expectSecret(fmt.Sprintf("epoch %d %s", n, c.name), c.got, c.want))
			c.got.Clear()
		}
		if priv, err := epoch.ExternalKeyPair(); err != nil {
			errs = append(errs, fmt.Errorf("epoch %d external key pair: %w", n, err))
		} else {
			errs = append(errs, expectEqual(fmt.Sprintf("epoch %d external_pub", n), priv.PublicKey(), e.ExternalPub))
		}
		// The exporter label is the JSON string itself (the generator
		// writes random hex text), not hex-decoded bytes.
		if exported, err := epoch.Export(e.Exporter.Label, e.Exporter.Context, e.Exporter.Length); err != nil {
			errs = append(errs, fmt.Errorf("epoch %d exporter: %w", n, err))
		} else {
			errs = append(errs, expectSecret(fmt.Sprintf("epoch %d exporter.secret", n), exported, e.Exporter.Secret))
			exported.Clear()
		}
		next, err := epoch.NextInitSecret()
		epoch.Clear()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err != nil {
			return err
		}
		init.Clear()
		init = next
	}
	return nil
}

// deriveEpoch runs one epoch of the key schedule from init, checking the
// joiner and welcome secrets on the way.
func deriveEpoch(suite *ciphersuite.Suite, init *keyschedule.InitSecret, gc, commitSecret, pskSecret, wantJoiner, wantWelcome []byte) (*keyschedule.Epoch, error) {
	joiner, err := init.Joiner(secret.Copy(commitSecret), gc)
	if err != nil {
		return nil, err
	}
	defer joiner.Clear()
	js := joiner.Secret()
	defer js.Clear()
	if err := expectSecret("joiner_secret", js, wantJoiner); err != nil {
		return nil, err
	}
	member, err := joiner.WithPSK(secret.Copy(pskSecret))
	if err != nil {
		return nil, err
	}
	defer member.Clear()
	welcome, err := member.WelcomeSecret()
	if err != nil {
		return nil, err
	}
	ws := welcome.Secret()
	welcome.Clear()
	defer ws.Clear()
	if err := expectSecret("welcome_secret", ws, wantWelcome); err != nil {
		return nil, err
	}
	return member.Epoch(gc)
}

// verifyPSKSecret computes psk_secret from external PSKs (§8.4): each
// PreSharedKeyID is psktype external(1), psk_id<V>, psk_nonce<V>.
func verifyPSKSecret(raw json.RawMessage) error {
	var tc struct {
		CipherSuite uint16 `json:"cipher_suite"`
		PSKs        []struct {
			ID    HexBytes `json:"psk_id"`
			PSK   HexBytes `json:"psk"`
			Nonce HexBytes `json:"psk_nonce"`
		} `json:"psks"`
		PSKSecret HexBytes `json:"psk_secret"`
	}
	if err := decodeCase(raw, &tc); err != nil {
		return err
	}
	suite, err := ciphersuite.Lookup(ciphersuite.ID(tc.CipherSuite))
	if err != nil {
		return err
	}
	psks := make([]keyschedule.PSK, len(tc.PSKs))
	for i, p := range tc.PSKs {
		var w codec.Writer
		w.Uint8(1) // PSKType external
		w.VarBytes(p.ID)
		w.VarBytes(p.Nonce)
		id, err := w.Result()
		if err != nil {
			return err
		}
		psks[i] = keyschedule.PSK{ID: id, Secret: secret.Copy(p.PSK)}
	}
	got, err := keyschedule.PSKSecret(suite, psks)
	for i := range psks {
		psks[i].Secret.Clear()
	}
	if err != nil {
		return err
	}
	defer got.Clear()
	return expectSecret("psk_secret", got, tc.PSKSecret)
}
