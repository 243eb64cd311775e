package jetstore_test

// Executable checks of the JetStream facts in /work/shared/notes/jetstream-facts.md that the
// jetstore design relies on (nats-server v2.15.3, nats.go v1.56.0, orbit.go/jetstreamext v0.4.0).
// Each test starts its own embedded single-node server with a file store in t.TempDir().
// The observed error codes are recorded in comments next to the assertions.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Server error codes observed in these tests.
const (
	codeSequenceNotFound    jetstream.ErrorCode = 10043 // JSSequenceNotFoundErrF "sequence N not found"
	codeMsgDeleteFailed     jetstream.ErrorCode = 10057 // JSStreamMsgDeleteFailedF "{err}": "message delete not permitted", "no message found", ...
	codeWrongLastSequence   jetstream.ErrorCode = 10071 // JSStreamWrongLastSequenceErrF
	codeBatchNotEnabled     jetstream.ErrorCode = 10174 // JSAtomicPublishDisabledErr
	codeBatchIncomplete     jetstream.ErrorCode = 10176 // JSAtomicPublishIncompleteBatchErr
	codeBatchTooLarge       jetstream.ErrorCode = 10199 // JSAtomicPublishTooLargeBatchErrF
	maxAtomicBatchSize                          = 1000  // server default streamDefaultMaxAtomicBatchSize
	maxDirectMultiResponses                     = 1024  // server const maxAllowedResponses in getDirectMulti
)

// startFactServer starts an embedded JetStream server with a file store in a fresh temp dir.
func startFactServer(t *testing.T) (*server.Server, jetstream.JetStream, string) {
	t.Helper()
	dir := t.TempDir()
	s, js := startFactServerAt(t, dir)
	return s, js, dir
}

// startFactServerAt starts an embedded JetStream server on an existing store dir (used to restart).
func startFactServerAt(t *testing.T, dir string) (*server.Server, jetstream.JetStream) {
	t.Helper()
	opts := &server.Options{
		JetStream: true,
		StoreDir:  dir,
		Host:      "127.0.0.1",
		Port:      -1,
		NoLog:     true,
		NoSigs:    true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		s.Shutdown()
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() {
		nc.Close()
		s.Shutdown()
		s.WaitForShutdown()
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return s, js
}

func factCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newMarker(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// filesContaining lists every file under dir whose content contains marker.
func filesContaining(t *testing.T, dir string, marker []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // temp files can vanish while we walk
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if bytes.Contains(b, marker) {
			rel, _ := filepath.Rel(dir, path)
			hits = append(hits, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return hits
}

// waitOnDisk waits until marker has been flushed to some file under dir (the file store writes
// through an asynchronous flusher).
func waitOnDisk(t *testing.T, dir string, marker []byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(filesContaining(t, dir, marker)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("marker %x never reached the disk", marker[:4])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// publishFlushed publishes data and waits until it is on disk. Used after an operation to make
// sure everything the server wrote because of that operation has been flushed too.
func publishFlushed(t *testing.T, ctx context.Context, js jetstream.JetStream, dir, subj string) uint64 {
	t.Helper()
	m := newMarker(t)
	ack, err := js.Publish(ctx, subj, m)
	if err != nil {
		t.Fatalf("publish %s: %v", subj, err)
	}
	waitOnDisk(t, dir, m)
	return ack.Sequence
}

func createKVStyleStream(t *testing.T, ctx context.Context, js jetstream.JetStream, name string, perSubject int64, storage jetstream.StorageType) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              "KV_" + name,
		Subjects:          []string{"$KV." + name + ".>"},
		MaxMsgsPerSubject: perSubject,
		AllowDirect:       true,
		AllowRollup:       true,
		DenyDelete:        false,
		Storage:           storage,
	})
	if err != nil {
		t.Fatalf("create stream KV_%s: %v", name, err)
	}
	return st
}

// rawMsgDelete calls $JS.API.STREAM.MSG.DELETE directly. nats.go's DeleteMsg/SecureDeleteMsg
// flatten the server's API error into a string (fmt.Errorf("%w: %s", ErrMsgDeleteUnsuccessful,
// ...)), so errors.As(*jetstream.APIError) does not work on them; this helper returns the typed
// error (nil on success).
func rawMsgDelete(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string, seq uint64, noErase bool) *jetstream.APIError {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"seq": seq, "no_erase": noErase})
	resp, err := js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.DELETE."+stream, req)
	if err != nil {
		t.Fatalf("msg delete request: %v", err)
	}
	var r struct {
		Success bool                `json:"success"`
		Error   *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		t.Fatalf("decode msg delete response %q: %v", resp.Data, err)
	}
	if !r.Success && r.Error == nil {
		t.Fatalf("msg delete: no success and no error: %q", resp.Data)
	}
	return r.Error
}

func apiCode(err error) jetstream.ErrorCode {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode
	}
	return 0
}

func streamMsgs(t *testing.T, ctx context.Context, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Fact 1: overwrite (MaxMsgsPerSubject 1), stream Purge with subject filter and DeleteMsg
// (no_erase) only mark messages deleted; the bytes stay in the block file.
func TestFactPurgeDeleteOverwriteDoNotErase(t *testing.T) {
	_, js, dir := startFactServer(t)
	ctx := factCtx(t)
	st := createKVStyleStream(t, ctx, js, "f", 1, jetstream.FileStorage)

	t.Run("overwrite", func(t *testing.T) {
		marker := newMarker(t)
		ack, err := js.Publish(ctx, "$KV.f.a", marker)
		if err != nil {
			t.Fatal(err)
		}
		waitOnDisk(t, dir, marker)
		if _, err := js.Publish(ctx, "$KV.f.a", []byte("second value")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetMsg(ctx, ack.Sequence); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("overwritten revision still readable: %v", err)
		}
		publishFlushed(t, ctx, js, dir, "$KV.f.filler1")
		if hits := filesContaining(t, dir, marker); len(hits) == 0 {
			t.Fatal("overwritten value was erased from disk; expected it to remain")
		} else {
			t.Logf("overwritten value still in %v", hits)
		}
	})

	t.Run("purge subject", func(t *testing.T) {
		marker := newMarker(t)
		if _, err := js.Publish(ctx, "$KV.f.b", marker); err != nil {
			t.Fatal(err)
		}
		waitOnDisk(t, dir, marker)
		if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV.f.b")); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetLastMsgForSubject(ctx, "$KV.f.b"); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("purged subject still readable: %v", err)
		}
		publishFlushed(t, ctx, js, dir, "$KV.f.filler2")
		if hits := filesContaining(t, dir, marker); len(hits) == 0 {
			t.Fatal("purged value was erased from disk; expected it to remain")
		}
	})

	t.Run("DeleteMsg", func(t *testing.T) {
		marker := newMarker(t)
		ack, err := js.Publish(ctx, "$KV.f.c", marker)
		if err != nil {
			t.Fatal(err)
		}
		waitOnDisk(t, dir, marker)
		if err := st.DeleteMsg(ctx, ack.Sequence); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetMsg(ctx, ack.Sequence); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatalf("deleted message still readable: %v", err)
		}
		publishFlushed(t, ctx, js, dir, "$KV.f.filler3")
		if hits := filesContaining(t, dir, marker); len(hits) == 0 {
			t.Fatal("DeleteMsg erased the value from disk; expected it to remain")
		}
	})
}

// Fact 2: SecureDeleteMsg overwrites the record on disk; the erasure survives a restart and the
// neighbouring messages in the same block stay readable.
func TestFactSecureDeleteErasesFromDisk(t *testing.T) {
	s, js, dir := startFactServer(t)
	ctx := factCtx(t)
	st := createKVStyleStream(t, ctx, js, "f", 1, jetstream.FileStorage)

	others := map[uint64][]byte{}
	pub := func(subj string, data []byte) uint64 {
		ack, err := js.Publish(ctx, subj, data)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	for i := range 3 {
		d := newMarker(t)
		others[pub(fmt.Sprintf("$KV.f.before%d", i), d)] = d
	}
	marker := newMarker(t)
	secretSeq := pub("$KV.f.secret", marker)
	for i := range 3 {
		d := newMarker(t)
		others[pub(fmt.Sprintf("$KV.f.after%d", i), d)] = d
	}
	waitOnDisk(t, dir, marker)
	for _, d := range others {
		waitOnDisk(t, dir, d)
	}
	hitsBefore := filesContaining(t, dir, marker)
	// All in one block, so the marker is not alone in its block.
	for _, d := range others {
		if got := filesContaining(t, dir, d); len(got) != 1 || got[0] != hitsBefore[0] {
			t.Fatalf("expected all messages in block %v, got %v", hitsBefore, got)
		}
	}

	if err := st.SecureDeleteMsg(ctx, secretSeq); err != nil {
		t.Fatalf("SecureDeleteMsg: %v", err)
	}
	if hits := filesContaining(t, dir, marker); len(hits) != 0 {
		t.Fatalf("marker still on disk after SecureDeleteMsg: %v", hits)
	}
	if _, err := st.GetMsg(ctx, secretSeq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("erased message readable: %v", err)
	}

	// Restart on the same store dir.
	js.Conn().Close()
	s.Shutdown()
	s.WaitForShutdown()
	if hits := filesContaining(t, dir, marker); len(hits) != 0 {
		t.Fatalf("marker on disk after shutdown: %v", hits)
	}
	_, js2 := startFactServerAt(t, dir)
	st2, err := js2.Stream(ctx, "KV_f")
	if err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, dir, marker); len(hits) != 0 {
		t.Fatalf("marker on disk after restart: %v", hits)
	}
	if _, err := st2.GetMsg(ctx, secretSeq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("erased message readable after restart: %v", err)
	}
	for seq, want := range others {
		m, err := st2.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d after restart: %v", seq, err)
		}
		if !bytes.Equal(m.Data, want) {
			t.Fatalf("seq %d corrupted after restart", seq)
		}
	}
}

// Fact 3: DenyDelete:true (what CreateKeyValue sets) makes SecureDeleteMsg fail with 10057,
// and DenyDelete cannot be switched off later.
// Observed: nats.go's SecureDeleteMsg returns fmt.Errorf("%w: %s", ErrMsgDeleteUnsuccessful,
// apiErr.Error()), so errors.As(err, **jetstream.APIError) is FALSE on it; only errors.Is(err,
// jetstream.ErrMsgDeleteUnsuccessful) and the text "err_code=10057" are available. A raw
// $JS.API.STREAM.MSG.DELETE request yields the typed APIError{ErrorCode: 10057}.
func TestFactDenyDeleteRefusesSecureDelete(t *testing.T) {
	_, js, _ := startFactServer(t)
	ctx := factCtx(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "deny"})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "k", []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, "KV_deny")
	if err != nil {
		t.Fatal(err)
	}
	if !st.CachedInfo().Config.DenyDelete {
		t.Fatal("CreateKeyValue no longer sets DenyDelete")
	}

	err = st.SecureDeleteMsg(ctx, rev)
	if err == nil {
		t.Fatal("SecureDeleteMsg succeeded on a DenyDelete stream")
	}
	if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		t.Fatalf("unexpected error type: %v", err)
	}
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		t.Fatalf("nats.go now keeps the APIError (code %d); update callers to use errors.As", ae.ErrorCode)
	}
	if !strings.Contains(err.Error(), "err_code=10057") {
		t.Fatalf("expected err_code=10057 in %q", err)
	}
	if ae := rawMsgDelete(t, ctx, js, "KV_deny", rev, false); ae == nil || ae.ErrorCode != codeMsgDeleteFailed {
		t.Fatalf("raw delete: want %d, got %v", codeMsgDeleteFailed, ae)
	}

	// DenyDelete cannot be turned off. Observed: 10052 (JSStreamInvalidConfigF, HTTP 500,
	// "stream configuration update can not cancel deny message deletes").
	cfg := st.CachedInfo().Config
	cfg.DenyDelete = false
	_, err = js.UpdateStream(ctx, cfg)
	if err == nil {
		t.Fatal("UpdateStream could turn DenyDelete off")
	}
	t.Logf("UpdateStream DenyDelete=false: code %d: %v", apiCode(err), err)
	if apiCode(err) != 10052 {
		t.Fatalf("expected 10052, got %v", err)
	}
}

// Fact 4: once a revision is overwritten (MaxMsgsPerSubject 1) its sequence is gone and
// SecureDeleteMsg fails; the old bytes stay on disk. The error code depends on WHERE the gone
// sequence lies (filestore.removeMsg):
//   - below the stream's first sequence (e.g. it was the oldest message): 10057
//     (JSStreamMsgDeleteFailedF) with description "no message found" and HTTP code 500
//     (ErrStoreMsgNotFound; a seq above LastSeq would give 10057 "stream EOF");
//   - inside the stream (a hole in a block's delete map): 10043 (JSSequenceNotFoundErrF,
//     "sequence N not found").
//
// Callers must therefore treat both 10043 and 10057/"no message found" as "already gone".
func TestFactSecureDeleteAfterOverwriteFails(t *testing.T) {
	_, js, dir := startFactServer(t)
	ctx := factCtx(t)
	st := createKVStyleStream(t, ctx, js, "f", 1, jetstream.FileStorage)

	// Oldest message in the stream, overwritten.
	headMarker := newMarker(t)
	head, err := js.Publish(ctx, "$KV.f.a", headMarker)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "$KV.f.keep", []byte("keeps the stream's first seq below the next one")); err != nil {
		t.Fatal(err)
	}
	// A message in the middle of the stream, overwritten.
	midMarker := newMarker(t)
	mid, err := js.Publish(ctx, "$KV.f.b", midMarker)
	if err != nil {
		t.Fatal(err)
	}
	waitOnDisk(t, dir, headMarker)
	waitOnDisk(t, dir, midMarker)
	if _, err := js.Publish(ctx, "$KV.f.a", []byte("new a")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "$KV.f.b", []byte("new b")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		seq      uint64
		code     jetstream.ErrorCode
		descPart string
	}{
		{"head", head.Sequence, codeMsgDeleteFailed, "no message found"},
		{"middle", mid.Sequence, codeSequenceNotFound, "not found"},
	} {
		err := st.SecureDeleteMsg(ctx, tc.seq)
		if err == nil {
			t.Fatalf("%s: SecureDeleteMsg of an overwritten revision succeeded", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
		want := fmt.Sprintf("err_code=%d", tc.code)
		if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: want ErrMsgDeleteUnsuccessful with %s, got %v", tc.name, want, err)
		}
		ae := rawMsgDelete(t, ctx, js, "KV_f", tc.seq, false)
		if ae == nil || ae.ErrorCode != tc.code || !strings.Contains(ae.Description, tc.descPart) {
			t.Fatalf("%s: raw delete: want %d %q, got %v", tc.name, tc.code, tc.descPart, ae)
		}
	}

	publishFlushed(t, ctx, js, dir, "$KV.f.filler")
	for _, m := range [][]byte{headMarker, midMarker} {
		if hits := filesContaining(t, dir, m); len(hits) == 0 {
			t.Fatal("overwritten value no longer on disk; expected it to remain")
		}
	}
}

func batchMsgs(subjects ...string) []*nats.Msg {
	msgs := make([]*nats.Msg, len(subjects))
	for i, s := range subjects {
		msgs[i] = &nats.Msg{Subject: s, Data: []byte(fmt.Sprintf("%s#%d", s, i)), Header: nats.Header{}}
	}
	return msgs
}

// checkBatchStored asserts that message i of msgs is stored at ack.Sequence-(n-1-i).
func checkBatchStored(t *testing.T, ctx context.Context, st jetstream.Stream, ack *jetstreamext.BatchAck, msgs []*nats.Msg) {
	t.Helper()
	n := uint64(len(msgs))
	if ack.BatchSize != n {
		t.Fatalf("ack batch size %d, want %d", ack.BatchSize, n)
	}
	for i, m := range msgs {
		seq := ack.Sequence - (n - 1 - uint64(i))
		got, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("batch msg %d at seq %d: %v", i, seq, err)
		}
		if got.Subject != m.Subject || !bytes.Equal(got.Data, m.Data) {
			t.Fatalf("batch msg %d: seq %d holds %s %q, want %s %q", i, seq, got.Subject, got.Data, m.Subject, m.Data)
		}
	}
}

// Fact 5: atomic batches (AllowAtomicPublish at creation or via UpdateStream) are stored with
// consecutive sequences ending at BatchAck.Sequence, even while other clients publish.
// Without AllowAtomicPublish the batch is refused with 10174.
func TestFactAtomicBatchConsecutiveSequences(t *testing.T) {
	_, js, _ := startFactServer(t)
	ctx := factCtx(t)

	t.Run("at creation", func(t *testing.T) {
		st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "B1", Subjects: []string{"b1.>"}, AllowAtomicPublish: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, "b1.pre", nil); err != nil {
			t.Fatal(err)
		}
		// Concurrent plain publishes on a second connection must not interleave with a batch.
		nc2, err := nats.Connect(js.Conn().ConnectedUrl())
		if err != nil {
			t.Fatal(err)
		}
		defer nc2.Close()
		js2, _ := jetstream.New(nc2)
		var stop atomic.Bool
		var noise atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := js2.Publish(ctx, "b1.noise", []byte("noise")); err != nil {
					return
				}
				noise.Add(1)
			}
		}()
		for round := range 20 {
			msgs := batchMsgs(fmt.Sprintf("b1.x.%d", round), fmt.Sprintf("b1.y.%d", round), fmt.Sprintf("b1.z.%d", round))
			ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs)
			if err != nil {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("round %d: %v", round, err)
			}
			checkBatchStored(t, ctx, st, ack, msgs)
		}
		stop.Store(true)
		wg.Wait()
		t.Logf("%d plain publishes ran concurrently with the batches", noise.Load())
	})

	t.Run("via UpdateStream", func(t *testing.T) {
		st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "B2", Subjects: []string{"b2.>"}})
		if err != nil {
			t.Fatal(err)
		}
		msgs := batchMsgs("b2.a", "b2.b", "b2.c")
		_, err = jetstreamext.PublishMsgBatch(ctx, js, msgs)
		if apiCode(err) != codeBatchNotEnabled {
			t.Fatalf("batch on stream without AllowAtomicPublish: want %d, got %v", codeBatchNotEnabled, err)
		}
		if n := streamMsgs(t, ctx, st); n != 0 {
			t.Fatalf("refused batch stored %d messages", n)
		}
		cfg := st.CachedInfo().Config
		cfg.AllowAtomicPublish = true
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatalf("UpdateStream AllowAtomicPublish: %v", err)
		}
		ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs)
		if err != nil {
			t.Fatal(err)
		}
		checkBatchStored(t, ctx, st, ack, msgs)
	})
}

// Fact 6: an expected-last-subject-sequence failure on any message rejects the whole batch with
// 10071 (a plain *jetstream.APIError, errors.As works); CAS inside a batch works.
func TestFactAtomicBatchExpectedSeqAllOrNothing(t *testing.T) {
	_, js, _ := startFactServer(t)
	ctx := factCtx(t)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "KV_f", Subjects: []string{"$KV.f.>"}, MaxMsgsPerSubject: 1, AllowDirect: true, AllowAtomicPublish: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	pa, err := js.Publish(ctx, "$KV.f.taken", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}

	rejected := func(t *testing.T, msgs []*nats.Msg) {
		t.Helper()
		before := streamMsgs(t, ctx, st)
		_, err := jetstreamext.PublishMsgBatch(ctx, js, msgs)
		if err == nil {
			t.Fatal("batch accepted")
		}
		var ae *jetstream.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("errors.As(*jetstream.APIError) failed on %T %v", err, err)
		}
		if ae.ErrorCode != codeWrongLastSequence {
			t.Fatalf("want %d, got %v", codeWrongLastSequence, ae)
		}
		if after := streamMsgs(t, ctx, st); after != before {
			t.Fatalf("rejected batch changed the stream: %d -> %d msgs", before, after)
		}
		for _, m := range msgs {
			if m.Subject == "$KV.f.taken" {
				continue
			}
			if _, err := st.GetLastMsgForSubject(ctx, m.Subject); !errors.Is(err, jetstream.ErrMsgNotFound) {
				t.Fatalf("%s stored by a rejected batch (err %v)", m.Subject, err)
			}
		}
	}

	t.Run("create on existing subject", func(t *testing.T) {
		msgs := batchMsgs("$KV.f.n1", "$KV.f.taken", "$KV.f.n3")
		msgs[1].Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		rejected(t, msgs)
	})
	t.Run("CAS stale", func(t *testing.T) {
		msgs := batchMsgs("$KV.f.s1", "$KV.f.s2", "$KV.f.taken")
		msgs[2].Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(pa.Sequence+100, 10))
		rejected(t, msgs)
	})
	t.Run("CAS current", func(t *testing.T) {
		msgs := batchMsgs("$KV.f.c1", "$KV.f.c2", "$KV.f.taken")
		msgs[2].Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(pa.Sequence, 10))
		ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs)
		if err != nil {
			t.Fatalf("CAS with the current sequence: %v", err)
		}
		checkBatchStored(t, ctx, st, ack, msgs)
	})
	t.Run("CAS now stale", func(t *testing.T) {
		// pa.Sequence was current before the previous subtest; it is stale now.
		msgs := batchMsgs("$KV.f.d1", "$KV.f.taken")
		msgs[1].Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(pa.Sequence, 10))
		rejected(t, msgs)
	})
}

// Fact 7: a batch covers one stream and at most 1000 messages.
//   - a batch spanning two streams: 10176 (JSAtomicPublishIncompleteBatchErr, "atomic publish
//     batch is incomplete"), answered by the second stream, which never saw message 1; nothing is
//     stored in either stream (the first stream's half batch is abandoned server-side).
//   - 1001 messages: 10199 (JSAtomicPublishTooLargeBatchErrF); 1000 messages succeed.
//
// Round trips (read in publishbatch.go, measured below via nc.Stats().InMsgs): with the default
// BatchFlowControl{AckFirst: true} PublishMsgBatch makes a request/response for message 1
// (the server acks it, so a bad batch fails fast) plus one for the commit, i.e. 2 round trips
// for any n >= 2 (1 for n == 1); AckEvery k adds one per k-th message. With
// BatchFlowControl{AckFirst: false} (BatchFlowControl itself implements PublishMsgBatchOpt)
// messages 1..n-1 are fire-and-forget publishes and only the commit waits: 1 round trip.
func TestFactAtomicBatchLimits(t *testing.T) {
	_, js, _ := startFactServer(t)
	ctx := factCtx(t)
	sa, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SA", Subjects: []string{"sa.>"}, AllowAtomicPublish: true})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SB", Subjects: []string{"sb.>"}, AllowAtomicPublish: true})
	if err != nil {
		t.Fatal(err)
	}
	nc := js.Conn()

	t.Run("round trips", func(t *testing.T) {
		in0 := nc.Stats().InMsgs
		ack, err := jetstreamext.PublishMsgBatch(ctx, js, batchMsgs("sa.rt.1", "sa.rt.2"))
		if err != nil {
			t.Fatal(err)
		}
		if got := nc.Stats().InMsgs - in0; got != 2 {
			t.Fatalf("default options: %d responses for a 2-message batch, want 2", got)
		}
		if ack.BatchSize != 2 {
			t.Fatalf("batch size %d", ack.BatchSize)
		}

		in0 = nc.Stats().InMsgs
		msgs := batchMsgs("sa.nf.1", "sa.nf.2", "sa.nf.3")
		ack, err = jetstreamext.PublishMsgBatch(ctx, js, msgs, jetstreamext.BatchFlowControl{AckFirst: false})
		if err != nil {
			t.Fatalf("AckFirst:false: %v", err)
		}
		if got := nc.Stats().InMsgs - in0; got != 1 {
			t.Fatalf("AckFirst:false: %d responses for a 3-message batch, want 1", got)
		}
		checkBatchStored(t, ctx, sa, ack, msgs)
	})

	t.Run("two streams", func(t *testing.T) {
		a0, b0 := streamMsgs(t, ctx, sa), streamMsgs(t, ctx, sb)
		_, err := jetstreamext.PublishMsgBatch(ctx, js, batchMsgs("sa.two", "sb.two"))
		if err == nil {
			t.Fatal("batch spanning two streams accepted")
		}
		t.Logf("two streams: %v", err)
		if apiCode(err) != codeBatchIncomplete {
			t.Fatalf("want %d, got %v", codeBatchIncomplete, err)
		}
		if a, b := streamMsgs(t, ctx, sa), streamMsgs(t, ctx, sb); a != a0 || b != b0 {
			t.Fatalf("two-stream batch stored messages: SA %d->%d SB %d->%d", a0, a, b0, b)
		}
	})

	big := func(prefix string, n int) []*nats.Msg {
		msgs := make([]*nats.Msg, n)
		for i := range msgs {
			msgs[i] = &nats.Msg{Subject: fmt.Sprintf("%s.%d", prefix, i), Data: []byte(strconv.Itoa(i))}
		}
		return msgs
	}
	fc := jetstreamext.BatchFlowControl{AckFirst: true, AckEvery: 100, AckTimeout: 5 * time.Second}

	t.Run("1001 rejected", func(t *testing.T) {
		a0 := streamMsgs(t, ctx, sa)
		_, err := jetstreamext.PublishMsgBatch(ctx, js, big("sa.big1001", maxAtomicBatchSize+1), fc)
		if err == nil {
			t.Fatal("1001-message batch accepted")
		}
		t.Logf("1001 messages: %v", err)
		if apiCode(err) != codeBatchTooLarge {
			t.Fatalf("want %d, got %v", codeBatchTooLarge, err)
		}
		if a := streamMsgs(t, ctx, sa); a != a0 {
			t.Fatalf("oversized batch stored %d messages", a-a0)
		}
	})

	t.Run("1000 accepted", func(t *testing.T) {
		msgs := big("sa.big1000", maxAtomicBatchSize)
		ack, err := jetstreamext.PublishMsgBatch(ctx, js, msgs, fc)
		if err != nil {
			t.Fatalf("1000-message batch: %v", err)
		}
		checkBatchStored(t, ctx, sa, ack, msgs)
	})
}

type gotMsg struct {
	subj string
	seq  uint64
}

func collect(t *testing.T, it func(func(*jetstream.RawStreamMsg, error) bool)) ([]gotMsg, error) {
	t.Helper()
	var out []gotMsg
	for m, err := range it {
		if err != nil {
			return out, err
		}
		out = append(out, gotMsg{m.Subject, m.Sequence})
	}
	return out, nil
}

// Fact 8: batch direct get.
//   - GetBatch with a wildcard GetBatchSubject returns only matching subjects, in sequence order,
//     at most `batch` per call; page by restarting at last seq + 1.
//   - When nothing matches, GetBatch itself returns nil error and the iterator yields
//     jetstreamext.ErrNoMessages (server status 404).
//   - GetLastMsgsFor matching more than 1024 subjects fails: the server answers
//     "NATS/1.0 413 Too Many Results" (empty body), which jetstreamext v0.4.0 surfaces as
//     jetstreamext.ErrBatchUnsupported (it only recognises 404 and then finds no
//     Nats-Num-Pending header). GetLastMsgsBatchSize does not help; exactly 1024 subjects work.
func TestFactGetBatchPagingAndMultiLastLimit(t *testing.T) {
	_, js, _ := startFactServer(t)
	ctx := factCtx(t)
	createKVStyleStream(t, ctx, js, "f", 1, jetstream.FileStorage)

	var want []gotMsg
	for i, s := range []string{"g1.a", "g2.x", "g1.b", "g1.c", "g2.y", "g1.d", "g10.z", "g1.e"} {
		subj := "$KV.f." + s
		ack, err := js.Publish(ctx, subj, []byte(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(s, "g1.") {
			want = append(want, gotMsg{subj, ack.Sequence})
		}
	}

	const page = 2
	var got []gotMsg
	next := uint64(1)
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not terminate")
		}
		it, err := jetstreamext.GetBatch(ctx, js, "KV_f", page, jetstreamext.GetBatchSubject("$KV.f.g1.>"), jetstreamext.GetBatchSeq(next))
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := collect(t, it)
		if errors.Is(err, jetstreamext.ErrNoMessages) && len(msgs) == 0 {
			break // past the last match
		}
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(msgs) == 0 || len(msgs) > page {
			t.Fatalf("page %d has %d messages", pages, len(msgs))
		}
		got = append(got, msgs...)
		next = msgs[len(msgs)-1].seq + 1
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("GetBatch pages\n got %v\nwant %v", got, want)
	}

	// Nothing matches.
	it, err := jetstreamext.GetBatch(ctx, js, "KV_f", 10, jetstreamext.GetBatchSubject("$KV.f.none.>"))
	if err != nil {
		t.Fatalf("GetBatch with no match returned an error up front: %v", err)
	}
	if msgs, err := collect(t, it); len(msgs) != 0 || !errors.Is(err, jetstreamext.ErrNoMessages) {
		t.Fatalf("no match: got %v, %v; want ErrNoMessages", msgs, err)
	}

	// More than 1024 subjects for GetLastMsgsFor.
	var lastOf1024 uint64
	for i := range maxDirectMultiResponses + 1 {
		paf, err := js.PublishAsync(fmt.Sprintf("$KV.f.m.%04d", i), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		if i == maxDirectMultiResponses-1 {
			select {
			case a := <-paf.Ok():
				lastOf1024 = a.Sequence
			case err := <-paf.Err():
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}

	for _, opts := range [][]jetstreamext.GetLastForOpt{nil, {jetstreamext.GetLastMsgsBatchSize(100)}} {
		it, err := jetstreamext.GetLastMsgsFor(ctx, js, "KV_f", []string{"$KV.f.m.>"}, opts...)
		if err != nil {
			t.Fatalf("GetLastMsgsFor up front: %v", err)
		}
		msgs, err := collect(t, it)
		if len(msgs) != 0 || !errors.Is(err, jetstreamext.ErrBatchUnsupported) {
			t.Fatalf("1025 subjects (opts %d): got %d msgs, err %v; want ErrBatchUnsupported (413)", len(opts), len(msgs), err)
		}
	}
	resp, err := js.Conn().RequestWithContext(ctx, "$JS.API.DIRECT.GET.KV_f", []byte(`{"multi_last":["$KV.f.m.>"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.Header.Get("Status"); st != "413" || len(resp.Data) != 0 {
		t.Fatalf("raw multi_last: status %q desc %q data %q; want 413", st, resp.Header.Get("Description"), resp.Data)
	}
	it, err = jetstreamext.GetLastMsgsFor(ctx, js, "KV_f", []string{"$KV.f.m.>"}, jetstreamext.GetLastMsgsUpToSeq(lastOf1024))
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err := collect(t, it); err != nil || len(msgs) != maxDirectMultiResponses {
		t.Fatalf("exactly 1024 subjects: %d msgs, err %v", len(msgs), err)
	}
}

// Fact 9: expected-last-subject-sequence 0 succeeds again once the subject's only message was
// removed, by SecureDeleteMsg or by a plain DeleteMsg (a name can be reused after erasure).
func TestFactExpectZeroAfterDelete(t *testing.T) {
	_, js, _ := startFactServer(t)
	ctx := factCtx(t)
	st := createKVStyleStream(t, ctx, js, "f", 1, jetstream.FileStorage)
	if _, err := js.Publish(ctx, "$KV.f.other", []byte("keep")); err != nil {
		t.Fatal(err)
	}
	create := func(subj string) (*jetstream.PubAck, error) {
		m := nats.NewMsg(subj)
		m.Data = []byte("v")
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		return js.PublishMsg(ctx, m)
	}
	for _, tc := range []struct {
		name string
		del  func(uint64) error
	}{
		{"SecureDeleteMsg", func(seq uint64) error { return st.SecureDeleteMsg(ctx, seq) }},
		{"DeleteMsg", func(seq uint64) error { return st.DeleteMsg(ctx, seq) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subj := "$KV.f.name-" + tc.name
			ack, err := create(subj)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := create(subj); apiCode(err) != codeWrongLastSequence {
				t.Fatalf("second create: want %d, got %v", codeWrongLastSequence, err)
			}
			if err := tc.del(ack.Sequence); err != nil {
				t.Fatal(err)
			}
			if _, err := create(subj); err != nil {
				t.Fatalf("create after %s: %v", tc.name, err)
			}
		})
	}
}

// Fact 10: with MaxMsgsPerSubject 2 the previous revision stays readable by sequence, and
// SecureDeleteMsg of it erases its bytes while the current revision stays.
func TestFactTwoRevisionsEraseOld(t *testing.T) {
	_, js, dir := startFactServer(t)
	ctx := factCtx(t)
	st := createKVStyleStream(t, ctx, js, "f", 2, jetstream.FileStorage)

	marker := newMarker(t)
	a1, err := js.Publish(ctx, "$KV.f.k", marker)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := js.Publish(ctx, "$KV.f.k", []byte("revision 2"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, a1.Sequence)
	if err != nil || !bytes.Equal(m.Data, marker) {
		t.Fatalf("revision 1 not readable after revision 2: %v", err)
	}
	waitOnDisk(t, dir, marker)
	if err := st.SecureDeleteMsg(ctx, a1.Sequence); err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, dir, marker); len(hits) != 0 {
		t.Fatalf("revision 1 still on disk: %v", hits)
	}
	last, err := st.GetLastMsgForSubject(ctx, "$KV.f.k")
	if err != nil || last.Sequence != a2.Sequence {
		t.Fatalf("current revision: %v %v", last, err)
	}
}

// Fact 11: on memory storage SecureDeleteMsg removes the message from the API. We cannot scan
// the server's heap: the original bytes may remain there (and in freed buffers) until reused.
func TestFactMemorySecureDelete(t *testing.T) {
	_, js, _ := startFactServer(t)
	ctx := factCtx(t)
	st := createKVStyleStream(t, ctx, js, "mem", 1, jetstream.MemoryStorage)
	keep, err := js.Publish(ctx, "$KV.mem.keep", []byte("keep"))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "$KV.mem.secret", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SecureDeleteMsg(ctx, ack.Sequence); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetMsg(ctx, ack.Sequence); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("erased message readable: %v", err)
	}
	if _, err := st.GetLastMsgForSubject(ctx, "$KV.mem.secret"); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("erased subject readable: %v", err)
	}
	if m, err := st.GetMsg(ctx, keep.Sequence); err != nil || string(m.Data) != "keep" {
		t.Fatalf("other message: %v", err)
	}
	if n := streamMsgs(t, ctx, st); n != 1 {
		t.Fatalf("stream has %d msgs, want 1", n)
	}
}
