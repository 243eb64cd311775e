package jetstore_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mlsengine/mlsengine/internal/natstest"
	"github.com/mlsengine/mlsengine/jetstore"
	"github.com/mlsengine/mlsengine/natsrv"
	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/storagetest"
)

// clusterTests runs only with NATSTEST_CLUSTER=1 (make cluster): a
// three-node cluster of nats-server processes takes seconds to form and the
// erasure window is measured in minutes.
func clusterTests(t *testing.T) []*natstest.Process {
	if os.Getenv("NATSTEST_CLUSTER") == "" {
		t.Skip("cluster test: run with NATSTEST_CLUSTER=1 (make cluster)")
	}
	return natstest.StartCluster(t, natstest.BuildServer(t), 3)
}

func clusterStore(t *testing.T, nodes []*natstest.Process, member string) *jetstore.Store {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.URL())
	}
	nc, err := natsrv.Connect(context.Background(), natsrv.ConnectOptions{URL: strings.Join(urls, ",")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	s, err := jetstore.Open(context.Background(), js, jetstore.Options{Member: member, RootKey: testRoot, Replicas: 3, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestClusterConformance runs the suite on an R3 cluster (batch commits).
func TestClusterConformance(t *testing.T) {
	nodes := clusterTests(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		member := strings.NewReplacer("/", "_").Replace(t.Name())
		return clusterStore(t, nodes, member[len(member)-min(len(member), 60):])
	})
}

// TestClusterErasureWindow measures how long the sealed copy of an erased
// secret stays in the files of an R3 cluster (the Raft log keeps the
// proposal until its next snapshot and compaction).
func TestClusterErasureWindow(t *testing.T) {
	nodes := clusterTests(t)
	ctx := context.Background()
	s := clusterStore(t, nodes, "alice")
	gid := []byte("window")
	sc := storage.GroupScope(gid)
	k := storage.Key{Scope: sc, Class: storage.KeyMaterial, Name: "epoch/1/secret"}
	v, err := s.Apply(ctx, &storage.Unit{Scope: sc, Puts: []storage.Record{{Key: k, Value: []byte("a secret that dies at once ......")}}})
	if err != nil {
		t.Fatal(err)
	}
	// The sealed frame as the server holds it.
	nc, _ := natsrv.Connect(ctx, natsrv.ConnectOptions{URL: nodes[0].URL()})
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, "KV_"+jetstore.DefaultKeyBucket)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, "$KV."+jetstore.DefaultKeyBucket+".alice.g.x"+"77696e646f77"+".r.epoch.1.secret")
	if err != nil {
		t.Fatal(err)
	}
	frame := m.Data
	onDisk := func() []string {
		var where []string
		for _, n := range nodes {
			filepath.WalkDir(n.StoreDir(), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, frame) {
						where = append(where, p)
					}
				}
				return nil
			})
		}
		return where
	}
	time.Sleep(time.Second) // let every replica write it
	if len(onDisk()) == 0 {
		t.Fatal("the sealed value is on no node's disk; the scan proves nothing")
	}
	start := time.Now()
	if _, err := s.Apply(ctx, &storage.Unit{Scope: sc, Version: v, DeletePrefixes: []storage.KeyPrefix{{Scope: sc, Class: storage.KeyMaterial, Prefix: "epoch/1/"}}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("erased in %v", time.Since(start))
	limit := 15 * time.Minute
	for {
		where := onDisk()
		if len(where) == 0 {
			t.Logf("the sealed copy left every node's files %v after the erasure", time.Since(start).Round(time.Second))
			return
		}
		if time.Since(start) > limit {
			t.Logf("after %v the sealed copy is still in %v", limit, where)
			return
		}
		// Writes make the Raft log move on; a quiet group would not.
		time.Sleep(5 * time.Second)
		t.Logf("%v: still in %d files (%s)", time.Since(start).Round(time.Second), len(where), filepath.Base(filepath.Dir(where[0])))
	}
}
