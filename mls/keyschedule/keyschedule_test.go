package keyschedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/mlsengine/mlsengine/internal/vectors"
	"github.com/mlsengine/mlsengine/mls/ciphersuite"
	"github.com/mlsengine/mlsengine/mls/codec"
	"github.com/mlsengine/mlsengine/mls/secret"
)

type hexBytes = vectors.Hex

func load(t testing.TB, name string, v any) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/vectors/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// suiteFor returns the suite or skips the case when the ciphersuite
// package does not support it; tests fail if every case is skipped.
func suiteFor(t *testing.T, id uint16, supported *int) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.ID(id))
	if errors.Is(err, ciphersuite.ErrUnsupportedCipherSuite) {
		t.Logf("suite %d unsupported, skipped", id)
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	*supported++
	return s
}

// keyScheduleVector is the part of a key-schedule.json case that these
// tests read; the conformance package's TestOfficialVectors checks every
// field of the file.
type keyScheduleVector struct {
	CipherSuite       uint16   `json:"cipher_suite"`
	InitialInitSecret hexBytes `json:"initial_init_secret"`
	Epochs            []struct {
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
		GroupContext            hexBytes `json:"group_context"`
		JoinerSecret            hexBytes `json:"joiner_secret"`
		WelcomeSecret           hexBytes `json:"welcome_secret"`
		InitSecret              hexBytes `json:"init_secret"`
		EncryptionSecret        hexBytes `json:"encryption_secret"`
		EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
		ConfirmationKey         hexBytes `json:"confirmation_key"`
		MembershipKey           hexBytes `json:"membership_key"`
	} `json:"epochs"`
}

func expectSecret(t *testing.T, name string, got secret.Secret, want []byte) {
	t.Helper()
	if !got.EqualBytes(want) {
		t.Errorf("%s mismatch", name)
	}
}

// TestSecretOwnership walks every case of key-schedule.json from
// initial_init_secret, clearing each stage as soon as the next one is
// derived: no stage may share memory with the one it came from. The
// conformance package's TestOfficialVectors checks the derived values; this
// test checks what the vectors do not list: the welcome key and nonce
// (§12.4.3.1), and that TakeEncryptionSecret and Clear leave nothing behind.
func TestSecretOwnership(t *testing.T) {
	var vs []keyScheduleVector
	load(t, "key-schedule.json", &vs)
	supported := 0
	for i, v := range vs {
		t.Run(fmt.Sprintf("%d-suite%d", i, v.CipherSuite), func(t *testing.T) {
			suite := suiteFor(t, v.CipherSuite, &supported)
			if suite == nil {
				return
			}
			init, err := NewInitSecret(suite, secret.Copy(v.InitialInitSecret))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range v.Epochs {
				joiner, err := init.Joiner(secret.Copy(e.CommitSecret), e.GroupContext)
				if err != nil {
					t.Fatal(err)
				}
				init.Clear()
				expectSecret(t, "joiner_secret", joiner.Secret(), e.JoinerSecret)
				member, err := joiner.WithPSK(secret.Copy(e.PSKSecret))
				if err != nil {
					t.Fatal(err)
				}
				joiner.Clear()
				welcome, err := member.WelcomeSecret()
				if err != nil {
					t.Fatal(err)
				}
				key, nonce, err := welcome.KeyNonce()
				if err != nil || key.Len() != suite.KeyLen() || nonce.Len() != suite.NonceLen() {
					t.Fatalf("welcome key/nonce: %v", err)
				}
				welcome.Clear()
				wk, _ := suite.ExpandWithLabel(e.WelcomeSecret, "key", nil, suite.KeyLen())
				wn, _ := suite.ExpandWithLabel(e.WelcomeSecret, "nonce", nil, suite.NonceLen())
				expectSecret(t, "welcome_key", key, wk)
				expectSecret(t, "welcome_nonce", nonce, wn)
				epoch, err := member.Epoch(e.GroupContext)
				if err != nil {
					t.Fatal(err)
				}
				member.Clear()
				expectSecret(t, "epoch_authenticator", epoch.EpochAuthenticator(), e.EpochAuthenticator)

				// The taken encryption secret leaves none behind.
				es := epoch.TakeEncryptionSecret()
				expectSecret(t, "taken encryption_secret", es, e.EncryptionSecret)
				if !epoch.EncryptionSecret().IsZero() || !epoch.TakeEncryptionSecret().IsZero() {
					t.Error("encryption secret still held after TakeEncryptionSecret")
				}

				if init, err = epoch.NextInitSecret(); err != nil {
					t.Fatal(err)
				}
				epoch.Clear()
				if !epoch.InitSecret().IsZero() {
					t.Error("Clear left the init secret")
				}
				expectSecret(t, "next init_secret", init.s, e.InitSecret)
			}
		})
	}
	if supported == 0 {
		t.Fatal("no supported suite")
	}
}

// TestJoinerPath derives an epoch the way a new member does, from the
// joiner_secret alone, and compares it with the committer's.
func TestJoinerPath(t *testing.T) {
	var vs []keyScheduleVector
	load(t, "key-schedule.json", &vs)
	suite, err := ciphersuite.Lookup(ciphersuite.ID(vs[0].CipherSuite))
	if err != nil {
		t.Fatal(err)
	}
	e := vs[0].Epochs[1]
	joiner, err := NewJoinerSecret(suite, secret.Copy(e.JoinerSecret))
	if err != nil {
		t.Fatal(err)
	}
	member, err := joiner.WithPSK(secret.Copy(e.PSKSecret))
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := member.Epoch(e.GroupContext)
	if err != nil {
		t.Fatal(err)
	}
	expectSecret(t, "epoch_authenticator", epoch.EpochAuthenticator(), e.EpochAuthenticator)
	tag, err := epoch.ConfirmationTag(e.ConfirmedTranscriptHash)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tag, suite.MAC(e.ConfirmationKey, e.ConfirmedTranscriptHash)) {
		t.Error("confirmation tag mismatch")
	}
	if !epoch.VerifyConfirmationTag(e.ConfirmedTranscriptHash, tag) {
		t.Error("valid confirmation tag rejected")
	}
	tag[0] ^= 1
	if epoch.VerifyConfirmationTag(e.ConfirmedTranscriptHash, tag) {
		t.Error("invalid confirmation tag accepted")
	}
	if epoch.VerifyConfirmationTag(e.ConfirmedTranscriptHash, tag[:4]) {
		t.Error("truncated confirmation tag accepted")
	}
	mt, err := epoch.MembershipTag([]byte("tbm"))
	if err != nil || !epoch.VerifyMembershipTag([]byte("tbm"), mt) || epoch.VerifyMembershipTag([]byte("tbn"), mt) {
		t.Error("membership tag round trip failed")
	}
	if !bytes.Equal(mt, suite.MAC(e.MembershipKey, []byte("tbm"))) {
		t.Error("membership tag mismatch")
	}
}

// TestPSKSecretKeepsInput checks that PSKSecret only reads the PSKs it is
// given; the conformance package's TestOfficialVectors checks its output
// on psk_secret.json.
func TestPSKSecretKeepsInput(t *testing.T) {
	suite, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	raw := [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 48)}
	psks := make([]PSK, len(raw))
	for j, r := range raw {
		psks[j] = PSK{ID: []byte{byte(j)}, Secret: secret.Copy(r)}
	}
	got, err := PSKSecret(suite, psks)
	if err != nil || got.Len() != suite.HashLen() {
		t.Fatalf("PSKSecret: %d bytes, %v", got.Len(), err)
	}
	for j := range psks {
		if !psks[j].Secret.EqualBytes(raw[j]) {
			t.Error("PSKSecret modified its input")
		}
	}
}

// TestTranscriptHashVectors checks the transcript-hash functions on
// transcript-hashes.json. The vectors carry a whole AuthenticatedContent
// of a Commit, whose last field is confirmation_tag<V> (§6.1); what
// precedes it is exactly ConfirmedTranscriptHashInput (§8.2).
func TestTranscriptHashVectors(t *testing.T) {
	var vs []struct {
		CipherSuite     uint16   `json:"cipher_suite"`
		ConfirmationKey hexBytes `json:"confirmation_key"`
		Content         hexBytes `json:"authenticated_content"`
		InterimBefore   hexBytes `json:"interim_transcript_hash_before"`
		ConfirmedAfter  hexBytes `json:"confirmed_transcript_hash_after"`
		InterimAfter    hexBytes `json:"interim_transcript_hash_after"`
	}
	load(t, "transcript-hashes.json", &vs)
	supported := 0
	for i, v := range vs {
		t.Run(fmt.Sprintf("%d-suite%d", i, v.CipherSuite), func(t *testing.T) {
			suite := suiteFor(t, v.CipherSuite, &supported)
			if suite == nil {
				return
			}
			nh := suite.HashLen()
			split := len(v.Content) - nh - codec.VarintLen(nh)
			if split < 0 {
				t.Fatal("content too short")
			}
			r := codec.NewReader(v.Content[split:])
			tag := r.VarBytes()
			if err := r.Finish(); err != nil || len(tag) != nh {
				t.Fatalf("confirmation tag not at the end: %v", err)
			}
			confirmed, err := ConfirmedTranscriptHash(suite, v.InterimBefore, v.Content[:split])
			if err != nil || !bytes.Equal(confirmed, v.ConfirmedAfter) {
				t.Fatalf("confirmed_transcript_hash mismatch: %v", err)
			}
			key := secret.Copy(v.ConfirmationKey)
			if !VerifyConfirmationTag(suite, key, confirmed, tag) {
				t.Error("confirmation tag rejected")
			}
			if got, err := ConfirmationTag(suite, key, confirmed); err != nil || !bytes.Equal(got, tag) {
				t.Error("confirmation tag mismatch")
			}
			interim, err := InterimTranscriptHash(suite, confirmed, tag)
			if err != nil || !bytes.Equal(interim, v.InterimAfter) {
				t.Fatalf("interim_transcript_hash mismatch: %v", err)
			}
		})
	}
	if supported == 0 {
		t.Fatal("no supported suite")
	}
}

func TestExternalInit(t *testing.T) {
	for _, id := range []ciphersuite.ID{1, 2, 3, 4, 5, 6, 7} {
		suite, err := ciphersuite.Lookup(id)
		if err != nil {
			t.Logf("suite %d: %v", id, err)
			continue
		}
		epoch := testEpoch(t, suite)
		priv, err := epoch.ExternalKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		kem, joinerInit, err := ExternalInitSender(suite, priv.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		memberInit, err := epoch.ExternalInit(kem)
		if err != nil {
			t.Fatal(err)
		}
		if joinerInit.s.Len() != suite.HashLen() || !joinerInit.s.Equal(memberInit.s) {
			t.Errorf("suite %d: external init secrets differ", id)
		}
		other, err := ExternalInitReceiver(suite, priv, kem)
		if err != nil || !other.s.Equal(memberInit.s) {
			t.Errorf("suite %d: ExternalInitReceiver differs: %v", id, err)
		}
		// Both sides reach the same next epoch.
		gc := []byte("group context")
		a := deriveEpoch(t, joinerInit, gc)
		b := deriveEpoch(t, memberInit, gc)
		if !a.EpochAuthenticator().Equal(b.EpochAuthenticator()) {
			t.Errorf("suite %d: epochs after external init differ", id)
		}
		// A corrupted kem_output must not yield the same secret.
		bad := bytes.Clone(kem)
		bad[len(bad)-1] ^= 0x55
		if x, err := epoch.ExternalInit(bad); err == nil && x.s.Equal(memberInit.s) {
			t.Errorf("suite %d: corrupted kem_output accepted", id)
		}
		if _, err := epoch.ExternalInit(nil); err == nil {
			t.Errorf("suite %d: empty kem_output accepted", id)
		}
	}
}

func testEpoch(t *testing.T, suite *ciphersuite.Suite) *Epoch {
	t.Helper()
	init, err := NewInitSecret(suite, secret.Zero(suite.HashLen()))
	if err != nil {
		t.Fatal(err)
	}
	return deriveEpoch(t, init, []byte("gc"))
}

func deriveEpoch(t *testing.T, init *InitSecret, gc []byte) *Epoch {
	t.Helper()
	j, err := init.Joiner(secret.Secret{}, gc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := j.WithPSK(secret.Secret{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := m.Epoch(gc)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSenderDataKeyNonce(t *testing.T) {
	suite, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	sds := secret.Copy(bytes.Repeat([]byte{7}, suite.HashLen()))
	long := bytes.Repeat([]byte{1}, 100)
	k1, n1, err := SenderDataKeyNonce(suite, sds, long)
	if err != nil {
		t.Fatal(err)
	}
	// Only the first Nh bytes are sampled.
	k2, n2, _ := SenderDataKeyNonce(suite, sds, append(bytes.Clone(long[:suite.HashLen()]), 9, 9, 9))
	if !k1.Equal(k2) || !n1.Equal(n2) {
		t.Error("sample is not the first Nh bytes")
	}
	want, _ := suite.ExpandWithLabel(sds.Bytes(), "key", long[:suite.HashLen()], suite.KeyLen())
	expectSecret(t, "sender data key", k1, want)
	// A short ciphertext is sampled whole.
	k3, _, _ := SenderDataKeyNonce(suite, sds, []byte{1, 2, 3})
	want, _ = suite.ExpandWithLabel(sds.Bytes(), "key", []byte{1, 2, 3}, suite.KeyLen())
	expectSecret(t, "short sender data key", k3, want)
	if _, _, err := SenderDataKeyNonce(suite, sds, nil); err != nil {
		t.Error(err)
	}
	if _, _, err := SenderDataKeyNonce(nil, sds, nil); !errors.Is(err, ErrNilSuite) {
		t.Error("nil suite accepted")
	}
}

func TestErrors(t *testing.T) {
	suite, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewInitSecret(nil, secret.Zero(32)); !errors.Is(err, ErrNilSuite) {
		t.Error(err)
	}
	if _, err := NewInitSecret(suite, secret.Zero(31)); !errors.Is(err, ErrSecretLength) {
		t.Error(err)
	}
	if _, err := NewJoinerSecret(suite, secret.Secret{}); !errors.Is(err, ErrSecretLength) {
		t.Error(err)
	}
	init, _ := NewInitSecret(suite, secret.Zero(32))
	if _, err := init.Joiner(secret.Zero(16), nil); !errors.Is(err, ErrSecretLength) {
		t.Error(err)
	}
	j, _ := init.Joiner(secret.Secret{}, nil)
	if _, err := j.WithPSK(secret.Zero(33)); !errors.Is(err, ErrSecretLength) {
		t.Error(err)
	}
	// An empty commit/psk secret is the all-zero one.
	j2, _ := init.Joiner(secret.Zero(32), nil)
	if !j.s.Equal(j2.s) {
		t.Error("empty commit_secret differs from zero commit_secret")
	}
	m1, _ := j.WithPSK(secret.Secret{})
	m2, _ := j.WithPSK(secret.Zero(32))
	if !m1.s.Equal(m2.s) {
		t.Error("empty psk_secret differs from zero psk_secret")
	}
	zero, err := PSKSecret(suite, nil)
	if err != nil || !zero.EqualBytes(make([]byte, 32)) {
		t.Error("PSKSecret of no PSKs is not zero")
	}
	if _, err := PSKSecret(suite, make([]PSK, 0x10000)); !errors.Is(err, ErrTooManyPSKs) {
		t.Error(err)
	}
	e, _ := m1.Epoch(nil)
	if _, err := e.Export("x", nil, 0x10000); !errors.Is(err, ErrInvalidLength) {
		t.Error(err)
	}
	if _, err := e.Export("x", nil, -1); !errors.Is(err, ErrInvalidLength) {
		t.Error(err)
	}
	// Cleared stages refuse to derive.
	init.Clear()
	if _, err := init.Joiner(secret.Secret{}, nil); !errors.Is(err, ErrCleared) {
		t.Error(err)
	}
	j.Clear()
	if _, err := j.WithPSK(secret.Secret{}); !errors.Is(err, ErrCleared) {
		t.Error(err)
	}
	m1.Clear()
	if _, err := m1.Epoch(nil); !errors.Is(err, ErrCleared) {
		t.Error(err)
	}
	if _, err := m1.WelcomeSecret(); !errors.Is(err, ErrCleared) {
		t.Error(err)
	}
	e.Clear()
	if _, err := e.Export("x", nil, 1); !errors.Is(err, ErrCleared) {
		t.Error(err)
	}
	if _, err := e.NextInitSecret(); !errors.Is(err, ErrCleared) {
		t.Error(err)
	}
	if e.VerifyConfirmationTag(nil, nil) {
		t.Error("cleared epoch verified a tag")
	}
	var nilEpoch *Epoch
	if _, err := nilEpoch.ExternalKeyPair(); !errors.Is(err, ErrCleared) {
		t.Error(err)
	}
	_ = nilEpoch.MembershipKey()
	var nilInit *InitSecret
	if _, err := nilInit.Joiner(secret.Secret{}, nil); !errors.Is(err, ErrCleared) {
		t.Error(err)
	}
}

// TestNoLeaks checks that no secret reaches a formatted string.
func TestNoLeaks(t *testing.T) {
	suite, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	raw := bytes.Repeat([]byte{0xab}, 32)
	init, _ := NewInitSecret(suite, secret.Copy(raw))
	e := deriveEpoch(t, init, nil)
	for _, v := range []any{init, e, *e} {
		for _, f := range []string{"%v", "%+v", "%#v", "%x", "%s"} {
			s := fmt.Sprintf(f, v)
			if bytes.Contains([]byte(s), []byte("abab")) || bytes.Contains([]byte(s), []byte("171, 171")) {
				t.Errorf("%s leaks: %s", f, s)
			}
		}
	}
}

func BenchmarkEpoch(b *testing.B) {
	suite, err := ciphersuite.Lookup(1)
	if err != nil {
		b.Fatal(err)
	}
	var vs []keyScheduleVector
	load(b, "key-schedule.json", &vs)
	e := vs[0].Epochs[0]
	commit := secret.Copy(e.CommitSecret)
	psk := secret.Copy(e.PSKSecret)
	b.ReportAllocs()
	for b.Loop() {
		init, _ := NewInitSecret(suite, secret.Copy(vs[0].InitialInitSecret))
		j, err := init.Joiner(commit, e.GroupContext)
		if err != nil {
			b.Fatal(err)
		}
		m, _ := j.WithPSK(psk)
		ep, _ := m.Epoch(e.GroupContext)
		init.Clear()
		j.Clear()
		m.Clear()
		ep.Clear()
	}
}

func BenchmarkExport(b *testing.B) {
	suite, err := ciphersuite.Lookup(1)
	if err != nil {
		b.Fatal(err)
	}
	init, _ := NewInitSecret(suite, secret.Zero(32))
	j, _ := init.Joiner(secret.Secret{}, nil)
	m, _ := j.WithPSK(secret.Secret{})
	e, _ := m.Epoch(nil)
	b.ReportAllocs()
	for b.Loop() {
		s, _ := e.Export("bench", []byte("context"), 32)
		s.Clear()
	}
}

// TestStoredEpoch: an epoch whose long-lived secrets are taken out and
// whose other secrets are stored and restored gives the same outputs as
// the original, and RestoreEpoch refuses secrets of the wrong number or
// length, clearing what it was given.
func TestStoredEpoch(t *testing.T) {
	for _, id := range []ciphersuite.ID{1, 5} {
		suite, _ := ciphersuite.Lookup(id)
		orig := testEpoch(t, suite)
		ref := testEpoch(t, suite)
		want := map[string][]byte{
			"sender data": ref.SenderDataSecret().Bytes(),
			"resumption":  ref.ResumptionPSK().Bytes(),
			"encryption":  ref.EncryptionSecret().Bytes(),
		}
		for name, got := range map[string]secret.Secret{
			"sender data": orig.TakeSenderDataSecret(),
			"resumption":  orig.TakeResumptionPSK(),
			"encryption":  orig.TakeEncryptionSecret(),
		} {
			if !bytes.Equal(got.Bytes(), want[name]) {
				t.Fatalf("suite %d: taken %s differs", id, name)
			}
		}
		if !orig.SenderDataSecret().IsZero() || !orig.ResumptionPSK().IsZero() || !orig.EncryptionSecret().IsZero() {
			t.Fatalf("suite %d: a taken secret is still in the epoch", id)
		}
		restored, err := RestoreEpoch(suite, orig.Stored())
		if err != nil {
			t.Fatal(err)
		}
		ex1, _ := ref.Export("label", []byte("ctx"), 40)
		ex2, _ := restored.Export("label", []byte("ctx"), 40)
		t1, _ := ref.ConfirmationTag([]byte("cth"))
		t2, _ := restored.ConfirmationTag([]byte("cth"))
		m1, _ := ref.MembershipTag([]byte("tbm"))
		m2, _ := restored.MembershipTag([]byte("tbm"))
		k1, _ := ref.ExternalKeyPair()
		k2, _ := restored.ExternalKeyPair()
		n1, _ := ref.NextInitSecret()
		n2, _ := restored.NextInitSecret()
		if !ex1.Equal(ex2) || !bytes.Equal(t1, t2) || !bytes.Equal(m1, m2) || !bytes.Equal(k1.PublicKey(), k2.PublicKey()) ||
			!ref.EpochAuthenticator().Equal(restored.EpochAuthenticator()) || !bytes.Equal(n1.s.Bytes(), n2.s.Bytes()) {
			t.Fatalf("suite %d: the restored epoch's outputs differ", id)
		}

		short := orig.Stored()
		short[3] = secret.New(short[3].Bytes()[1:])
		kept := short[0]
		if _, err := RestoreEpoch(suite, short); !errors.Is(err, ErrInvalidLength) {
			t.Fatalf("suite %d: a short secret: %v", id, err)
		}
		if !kept.IsZero() && !bytes.Equal(kept.Bytes(), make([]byte, kept.Len())) {
			t.Fatalf("suite %d: a refused secret was not cleared", id)
		}
		if _, err := RestoreEpoch(suite, orig.Stored()[:5]); !errors.Is(err, ErrInvalidLength) {
			t.Fatalf("suite %d: five secrets: %v", id, err)
		}
	}
}
