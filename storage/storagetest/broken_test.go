package storagetest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mlsengine/mlsengine/storage"
	"github.com/mlsengine/mlsengine/storage/memory"
	"github.com/mlsengine/mlsengine/storage/storagetest"
)

// naive is a deliberately simple backend whose defects can be switched on
// one at a time, to show that the suite catches each of them. With no defect
// it is correct and passes the suite.
type naive struct {
	defect string

	mu        sync.Mutex
	last      uint64
	versions  map[storage.Scope]uint64
	recs      map[storage.Key][]byte
	graveyard [][]byte // values a non-erasing backend still holds
	applied   map[storage.Scope][]applied
}

type applied struct {
	id      storage.UnitID
	version uint64
}

func newNaive(defect string) *naive {
	return &naive{defect: defect, versions: map[storage.Scope]uint64{}, recs: map[storage.Key][]byte{}, applied: map[storage.Scope][]applied{}}
}

func (n *naive) is(d string) bool { return n.defect == d }

// scope maps a scope to where the backend files it. "idprefix" files groups
// by the first byte of their id only, so groups whose ids share it collide.
func (n *naive) scope(s storage.Scope) storage.Scope {
	if n.is("idprefix") && s.IsGroup() && len(s.GroupID()) > 1 {
		return storage.GroupScope(s.GroupID()[:1])
	}
	return s
}

func (n *naive) key(k storage.Key) storage.Key { k.Scope = n.scope(k.Scope); return k }

func (n *naive) copyIn(v []byte) []byte {
	if n.is("alias") {
		return v
	}
	return append([]byte{}, v...)
}

func (n *naive) drop(k storage.Key) {
	v, ok := n.recs[k]
	if !ok {
		return
	}
	if n.is("noerase") {
		n.graveyard = append(n.graveyard, v)
	} else {
		clear(v)
	}
	delete(n.recs, k)
}

func (n *naive) Apply(ctx context.Context, u *storage.Unit) (uint64, error) {
	if err := ctx.Err(); err != nil && !n.is("ignorectx") {
		return 0, err
	}
	if !n.is("novalidate") {
		if err := u.Validate(); err != nil {
			return 0, err
		}
	} else if u == nil {
		return 0, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	scope := n.scope(u.Scope)
	if !u.ID.IsZero() && !n.is("noretry") {
		for _, a := range n.applied[scope] {
			if a.id == u.ID {
				return a.version, nil
			}
		}
	}
	v, err := n.apply(u, scope)
	if err == nil && !u.ID.IsZero() {
		keep := storage.RememberedUnits
		if n.is("shortmemory") {
			keep = 1
		}
		as := append(n.applied[scope], applied{u.ID, v})
		n.applied[scope] = as[max(0, len(as)-keep):]
	}
	return v, err
}

func (n *naive) apply(u *storage.Unit, scope storage.Scope) (uint64, error) {
	if u.Scope.IsGroup() && !n.is("noconflict") {
		if have := n.versions[scope]; have != u.Version {
			return 0, fmt.Errorf("%w: have %d", storage.ErrConflict, have)
		}
		if n.is("checkthenact") {
			// The fence and the write are not one critical section.
			n.mu.Unlock()
			runtime.Gosched()
			n.mu.Lock()
		}
	}
	writeOnce := func(r storage.Record) error {
		if _, ok := n.recs[n.key(r.Key)]; ok && r.Key.Class == storage.KeyMaterial && !n.is("nowriteonce") {
			return fmt.Errorf("%w: %v", storage.ErrWriteOnce, r.Key)
		}
		return nil
	}
	if !n.is("nonatomic") {
		for _, r := range u.Puts {
			if err := writeOnce(r); err != nil {
				return 0, err
			}
		}
	}
	if u.DeleteGroup {
		for k := range n.recs {
			if k.Scope == scope && !(n.is("leakydelete") && k.Class == storage.KeyMaterial) {
				n.drop(k)
			}
		}
		delete(n.versions, scope)
	}
	for _, p := range u.DeletePrefixes {
		for k := range n.recs {
			if k.Scope == n.scope(p.Scope) && k.Class == p.Class && strings.HasPrefix(k.Name, p.Prefix) {
				if n.is("prefixnoerase") {
					n.graveyard = append(n.graveyard, n.recs[k])
					delete(n.recs, k)
					continue
				}
				if n.is("noprefix") {
					continue
				}
				n.drop(k)
			}
		}
	}
	for _, k := range u.Deletes {
		n.drop(n.key(k))
	}
	for _, r := range u.Puts {
		if n.is("nonatomic") {
			if err := writeOnce(r); err != nil {
				return 0, err
			}
		}
		if n.is("torn") {
			n.mu.Unlock()
			runtime.Gosched()
			n.mu.Lock()
		}
		n.recs[n.key(r.Key)] = n.copyIn(r.Value)
	}
	if !u.Scope.IsGroup() || u.DeleteGroup {
		return 0, nil
	}
	if n.is("reuseversions") {
		n.versions[scope]++
		return n.versions[scope], nil
	}
	n.last++
	n.versions[scope] = n.last
	return n.last, nil
}

func (n *naive) Load(ctx context.Context, gid []byte) (*storage.GroupRecords, error) {
	if err := ctx.Err(); err != nil && !n.is("ignorectx") {
		return nil, err
	}
	if err := storage.ValidateGroupID(gid); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	s := storage.GroupScope(gid)
	v, ok := n.versions[n.scope(s)]
	if !ok && !n.is("missingisempty") {
		return nil, storage.ErrGroupNotFound
	}
	g := &storage.GroupRecords{Version: v}
	for k, val := range n.recs {
		if k.Scope == n.scope(s) {
			k.Scope = s
			g.Records = append(g.Records, storage.Record{Key: k, Value: n.copyIn(val)})
		}
	}
	if !n.is("unsorted") {
		storage.SortRecords(g.Records)
	} else {
		slices.SortFunc(g.Records, func(a, b storage.Record) int { return -a.Key.Compare(b.Key) })
	}
	return g, nil
}

func (n *naive) Version(ctx context.Context, gid []byte) (uint64, error) {
	if err := ctx.Err(); err != nil && !n.is("ignorectx") {
		return 0, err
	}
	if err := storage.ValidateGroupID(gid); err != nil {
		return 0, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.versions[n.scope(storage.GroupScope(gid))]
	if !ok {
		return 0, storage.ErrGroupNotFound
	}
	if n.is("staleversion") && v > 0 {
		return v - 1, nil
	}
	return v, nil
}

func (n *naive) GetMany(ctx context.Context, keys []storage.Key) ([]storage.Record, error) {
	if err := ctx.Err(); err != nil && !n.is("ignorectx") {
		return nil, err
	}
	if err := storage.ValidateGetMany(keys); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []storage.Record
	for i, k := range keys {
		if n.is("getmanyfirst") && i > 0 {
			break
		}
		if v, ok := n.recs[n.key(k)]; ok {
			out = append(out, storage.Record{Key: k, Value: n.copyIn(v)})
		}
	}
	storage.SortRecords(out)
	return slices.CompactFunc(out, func(a, b storage.Record) bool { return a.Key == b.Key }), nil
}

func (n *naive) Get(ctx context.Context, k storage.Key) ([]byte, error) {
	if err := ctx.Err(); err != nil && !n.is("ignorectx") {
		return nil, err
	}
	if err := k.Validate(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.recs[n.key(k)]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return n.copyIn(v), nil
}

func (n *naive) List(ctx context.Context, s storage.Scope, c storage.Class, prefix string) ([]storage.Record, error) {
	if err := ctx.Err(); err != nil && !n.is("ignorectx") {
		return nil, err
	}
	if err := storage.ValidateList(s, c, prefix); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []storage.Record
	for k, v := range n.recs {
		if k.Scope == n.scope(s) && k.Class == c && strings.HasPrefix(k.Name, prefix) {
			k.Scope = s
			out = append(out, storage.Record{Key: k, Value: n.copyIn(v)})
		}
	}
	storage.SortRecords(out)
	return out, nil
}

func (n *naive) RawContents(ctx context.Context) ([][]byte, error) {
	if err := ctx.Err(); err != nil && !n.is("ignorectx") {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var out [][]byte
	for k, v := range n.recs {
		out = append(out, []byte(k.Name), append([]byte(nil), v...))
	}
	if !n.is("blindinspector") {
		for _, v := range n.graveyard {
			out = append(out, append([]byte(nil), v...))
		}
	} else {
		out = nil
	}
	return out, nil
}

const defectEnv = "STORAGETEST_DEFECT"

// TestDefectiveBackend runs the suite on the naive backend with the defect
// named in the environment; TestSuiteCatchesDefects runs it in a subprocess
// per defect, since a suite failure fails the test that runs it.
func TestDefectiveBackend(t *testing.T) {
	d, ok := os.LookupEnv(defectEnv)
	if !ok {
		t.Skip("run by TestSuiteCatchesDefects")
	}
	storagetest.Run(t, func(t *testing.T) storage.Backend { return newNaive(d) })
}

// TestNaiveIsConformant shows the fixture itself is correct without a
// defect, so the failures below come from the defects.
func TestNaiveIsConformant(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return newNaive("") })
}

func TestSuiteCatchesDefects(t *testing.T) {
	if _, ok := os.LookupEnv(defectEnv); ok {
		t.Skip("inside a subprocess")
	}
	cases := []struct {
		defect string
		// subtests that must fail; others may fail too.
		want []string
	}{
		{"nonatomic", []string{"Atomicity"}},
		{"noconflict", []string{"Versions", "VersionNeverReused", "ConcurrentSameGroup"}},
		{"checkthenact", []string{"ConcurrentSameGroup"}},
		{"nowriteonce", []string{"Overwrite", "Atomicity", "ConcurrentWriteOnce"}},
		{"alias", []string{"Copies"}},
		{"noerase", []string{"Erasure"}},
		{"blindinspector", []string{"Erasure"}},
		{"leakydelete", []string{"DeleteGroup", "Erasure"}},
		{"missingisempty", []string{"NotFound"}},
		{"reuseversions", []string{"VersionNeverReused"}},
		{"ignorectx", []string{"Context"}},
		{"unsorted", []string{"Order", "RoundTrip"}},
		{"torn", []string{"ConcurrentReaders"}},
		{"novalidate", []string{"InvalidUnits"}},
		{"idprefix", []string{"Isolation", "DeleteGroup"}},
		{"noretry", []string{"Retries", "UnknownOutcome"}},
		{"shortmemory", []string{"Retries"}},
		{"noprefix", []string{"DeletePrefixes"}},
		{"prefixnoerase", []string{"DeletePrefixes"}},
		{"staleversion", []string{"VersionRead"}},
		{"getmanyfirst", []string{"GetMany"}},
	}
	failRE := regexp.MustCompile(`--- FAIL: TestDefectiveBackend/(\w+)`)
	for _, c := range cases {
		t.Run(c.defect, func(t *testing.T) {
			t.Parallel()
			args := []string{"-test.run=^TestDefectiveBackend$", "-test.count=1", "-test.v"}
			if testing.Short() {
				args = append(args, "-test.short")
			}
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), defectEnv+"="+c.defect)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a backend with defect %q", c.defect)
			}
			var failed []string
			for _, m := range failRE.FindAllStringSubmatch(string(out), -1) {
				failed = append(failed, m[1])
			}
			for _, w := range c.want {
				if !slices.Contains(failed, w) {
					t.Errorf("defect %q: subtest %s did not fail (failed: %v)", c.defect, w, failed)
				}
			}
			if strings.Contains(string(out), "WARNING: DATA RACE") {
				t.Errorf("defect %q: data race in the fixture", c.defect)
			}
			t.Logf("defect %q fails %v", c.defect, failed)
		})
	}
}

// The memory backend is the reference; check here too that it passes, so
// this package's tests alone show the suite is satisfiable.
func TestMemoryIsConformant(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return memory.New() })
}
