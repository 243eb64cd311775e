package worker_test

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsengine/mlsengine/events"
	"github.com/mlsengine/mlsengine/worker"
)

// With room for one group handle, members of two groups take turns: every
// input loads its group again, and every message still arrives once.
func TestHandleCacheBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := startWith(t, func(c *worker.Config) { c.MaxHandles = 1; c.Metrics = reg })
	gids := [][]byte{[]byte("one"), []byte("two")}
	for i, gid := range gids {
		h.newGroup(gid, fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i))
	}
	loads := func() float64 { return metricValue(t, reg, "mls_worker_group_loads_total") }
	before := loads()
	const rounds = 4
	for r := range rounds {
		for i, gid := range gids {
			text := fmt.Sprintf("round %d", r)
			h.ok(&events.Command{Kind: events.CmdSend, Member: fmt.Sprintf("a%d", i), Group: gid, Data: []byte(text)})
			e := h.wait(func(e *events.Event) bool { return e.Kind == events.EvApplication && e.Member == fmt.Sprintf("b%d", i) })
			if string(e.Data) != text {
				t.Fatalf("b%d read %q, want %q", i, e.Data, text)
			}
		}
	}
	// Each send and each delivery finds the other group's handle cached.
	if got := loads() - before; got < 2*2*rounds-1 {
		t.Errorf("%v loads for %d inputs alternating between groups with one handle cached", got, 2*2*rounds)
	}
	if n := metricValue(t, reg, "mls_worker_group_handles"); n > 1 {
		t.Errorf("%v handles cached, bound 1", n)
	}
}

// metricValue reads a counter or gauge without labels.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
