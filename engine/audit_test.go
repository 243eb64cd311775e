package engine_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/mls/wire"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/storage"
)

// collector wraps a backend and keeps, outside of it, every key-material
// value the engine stored and which of them the engine's units deleted: the
// ground truth the audit checks the server's disk against, independent of
// anything jetstore reports.
type collector struct {
	testStore
	mu      sync.Mutex
	live    map[storage.Key][]byte
	deleted [][]byte
	names   map[string]string // deleted value -> its name, for reports
	puts    int
}

func newCollector(b testStore) *collector {
	return &collector{testStore: b, live: map[storage.Key][]byte{}, names: map[string]string{}}
}

func (c *collector) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	v, err := c.testStore.Apply(ctx, u)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kill := func(k storage.Key) {
		if val, ok := c.live[k]; ok {
			c.deleted = append(c.deleted, val)
			c.names[string(val)] = k.String()
			delete(c.live, k)
		}
	}
	for _, k := range u.Deletes {
		kill(k)
	}
	for k := range c.live {
		for _, p := range u.DeletePrefixes {
			if p.Covers(k) {
				kill(k)
			}
		}
		if u.DeleteGroup && k.Scope == u.Scope {
			kill(k)
		}
	}
	for _, r := range u.Puts {
		if r.Key.Class == storage.KeyMaterial {
			c.live[r.Key] = bytes.Clone(r.Value)
			c.puts++
		}
	}
	return v, nil
}

// encodings returns the forms in which a store could have written v.
func encodings(v []byte) [][]byte {
	out := [][]byte{v,
		[]byte(base64.StdEncoding.EncodeToString(v)),
		[]byte(base64.RawStdEncoding.EncodeToString(v)),
		[]byte(base64.URLEncoding.EncodeToString(v)),
		[]byte(base64.RawURLEncoding.EncodeToString(v)),
		[]byte(hex.EncodeToString(v)),
		[]byte(strings.ToUpper(hex.EncodeToString(v))),
	}
	// The secret proper is the tail of the record's envelope: look for its
	// last 32 bytes alone as well, in case a store re-encoded the rest.
	if len(v) > 48 {
		t := v[len(v)-32:]
		out = append(out, t, []byte(base64.StdEncoding.EncodeToString(t)), []byte(hex.EncodeToString(t)))
	}
	return out
}

// finder searches many patterns at once: patterns are indexed by their
// first 8 bytes, and the haystack is slid over once.
type finder struct {
	idx      map[uint64][][]byte
	patterns int
}

func newFinder(values [][]byte) *finder {
	f := &finder{idx: map[uint64][][]byte{}}
	for _, v := range values {
		for _, e := range encodings(v) {
			if len(e) < 16 {
				continue
			}
			k := binary.LittleEndian.Uint64(e)
			f.idx[k] = append(f.idx[k], e)
			f.patterns++
		}
	}
	return f
}

// hits counts the patterns found in b.
func (f *finder) hits(b []byte) int {
	n := 0
	for i := 0; i+8 <= len(b); i++ {
		ps, ok := f.idx[binary.LittleEndian.Uint64(b[i:])]
		if !ok {
			continue
		}
		for _, p := range ps {
			if bytes.HasPrefix(b[i:], p) {
				n++
			}
		}
	}
	return n
}

// scanDir searches every file under dir; it returns the hits and the bytes
// scanned, and names the files with hits.
func scanDir(t *testing.T, dir string, f *finder) (hits int, scanned int64, where []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned += int64(len(b))
		if n := f.hits(b); n > 0 {
			hits += n
			where = append(where, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits, scanned, where
}

// TestJetStoreForwardSecrecyAudit runs a group through hundreds of epochs
// and thousands of application messages on a file-store server, then
// scans every byte of the server's store directory, before and after a
// restart, for every key-material value the engine deleted, raw and in the
// encodings a store could use, and also everything the members' wrapping
// keys can open in it. It also checks that no key material, deleted or
// live, is anywhere in the snapshot bucket.
func TestJetStoreForwardSecrecyAudit(t *testing.T) {
	epochs, apps := 200, 2000
	if testing.Short() {
		epochs, apps = 30, 300
	}
	if n, err := strconv.Atoi(os.Getenv("MLS_AUDIT_EPOCHS")); err == nil {
		epochs, apps = n, 10*n
	}
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := natsrv.StartEmbedded(ctx, natsrv.EmbeddedOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	open := func(name string) *jetstore.Store {
		nc, err := srv.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		s, err := jetstore.Open(ctx, js, jetstore.Options{Member: name, RootKey: jetRoot, StoreDir: srv.StoreDir(), SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	names := []string{"alice", "bob", "carol"}
	var ms []*member
	var cols []*collector
	stores := map[string]*jetstore.Store{}
	for i, n := range names {
		stores[n] = open(n)
		c := newCollector(stores[n])
		cols = append(cols, c)
		ms = append(ms, newMemberIn(t, n, uint64(40+i), c))
	}
	alice := ms[0]
	alice.create(t, []byte("audit"))
	res, err := alice.g.AddMembers(ctx, []*wire.KeyPackage{ms[1].keyPackage(t, false), ms[2].keyPackage(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.g.MergePendingCommit(ctx); err != nil {
		t.Fatal(err)
	}
	ms[1].join(t, res.Welcome)
	ms[2].join(t, res.Welcome)
	rng := rand.New(rand.NewPCG(9, 9))
	start := time.Now()
	sent := 0
	for e := 0; e < epochs; e++ {
		for ; sent < apps*(e+1)/epochs; sent++ {
			from := ms[rng.IntN(3)]
			msg, err := from.g.Protect(ctx, []byte("message "+strconv.Itoa(sent)), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if m != from {
					if _, err := m.g.Process(ctx, msg); err != nil {
						t.Fatalf("%s decrypting message %d: %v", m.name, sent, err)
					}
				}
			}
		}
		c := ms[rng.IntN(3)]
		var others []*member
		for _, m := range ms {
			if m != c {
				others = append(others, m)
			}
		}
		res, err := c.g.SelfUpdate(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		land(t, c, res, others...)
	}
	mustAgree(t, ms...)
	t.Logf("%d epochs, %d application messages in %v", epochs, sent, time.Since(start).Round(time.Millisecond))

	// What was deleted, minus values that live on under another name (an
	// own Update's key becomes the leaf's HPKE key).
	liveVals := map[string]bool{}
	var all, deleted [][]byte
	puts := 0
	for _, c := range cols {
		for _, v := range c.live {
			liveVals[string(v)] = true
			all = append(all, v)
		}
		puts += c.puts
	}
	livesOn := func(v []byte) bool {
		if liveVals[string(v)] {
			return true
		}
		if len(v) > 48 {
			for lv := range liveVals {
				if strings.Contains(lv, string(v[len(v)-32:])) {
					return true
				}
			}
		}
		return false
	}
	for _, c := range cols {
		for _, v := range c.deleted {
			all = append(all, v)
			if !livesOn(v) {
				deleted = append(deleted, v)
			}
		}
	}
	if len(deleted) < epochs {
		t.Fatalf("only %d deleted secrets collected", len(deleted))
	}
	f := newFinder(deleted)

	snapDir := filepath.Join(srv.StoreDir(), "$G", "streams", "KV_"+jetstore.DefaultSnapshotBucket)
	check := func(when string, stores map[string]*jetstore.Store) {
		hits, scanned, where := scanDir(t, dir, f)
		t.Logf("%s: %d deleted secrets (%d of %d key-material puts), %d patterns, %d bytes scanned in %s: %d hits",
			when, len(deleted), len(deleted), puts, f.patterns, scanned, dir, hits)
		if hits > 0 {
			t.Errorf("%s: %d deleted secrets found on disk, in %v", when, hits, where)
		}
		// What the members' own keys can open in those bytes.
		for n, s := range stores {
			rc, err := s.RawContents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			opened := 0
			for _, b := range rc {
				if n := f.hits(b); n > 0 {
					opened += n
					for _, c := range cols {
						for _, v := range c.deleted {
							if bytes.Contains(b, v) {
								t.Logf("%s: %s found in an entry of %d bytes", when, c.names[string(v)], len(b))
							}
						}
					}
				}
			}
			if opened > 0 {
				t.Errorf("%s: %d deleted secrets recoverable with %s's wrapping keys", when, opened, n)
			}
		}
		// No key material, deleted or live, in the snapshot bucket.
		snapF := newFinder(all)
		sh, sscanned, swhere := scanDir(t, snapDir, snapF)
		if sscanned == 0 {
			t.Errorf("%s: the snapshot bucket's directory is empty or missing", when)
		}
		if sh > 0 {
			t.Errorf("%s: key material in the snapshot bucket: %d hits in %v", when, sh, swhere)
		}
	}
	// A positive control: the scanner finds what is there. Live key
	// material opens from the raw contents; public records are on disk raw.
	{
		rc, err := stores["alice"].RawContents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var live [][]byte
		for _, v := range cols[0].live {
			live = append(live, v)
		}
		lf, found := newFinder(live), 0
		for _, b := range rc {
			found += lf.hits(b)
		}
		if found == 0 {
			t.Fatal("control: none of alice's live key material found in her raw contents; the scan proves nothing")
		}
		recs, err := stores["alice"].Load(ctx, []byte("audit"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, ok := recs.Find(storage.Public, "context")
		if !ok || len(ctx) < 16 {
			t.Fatalf("control: no context record")
		}
		if h, _, _ := scanDir(t, dir, newFinder([][]byte{ctx})); h == 0 {
			t.Fatal("control: the group context is not found raw on disk; the scan proves nothing")
		}
	}
	check("running", stores)
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	again := map[string]*jetstore.Store{}
	for _, n := range names {
		again[n] = open(n)
	}
	check("after restart", again)
}
