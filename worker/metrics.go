package worker

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mlsengine/mlsengine/events"
)

// metrics are the worker's Prometheus metrics (Config.Metrics) and the
// counters of its throughput log line.
type metrics struct {
	applied     *prometheus.CounterVec   // inputs done with, by kind
	rejected    *prometheus.CounterVec   // rejections, by code
	redelivered prometheus.Counter       // inputs delivered more than once
	retried     prometheus.Counter       // inputs given back to be retried
	latency     *prometheus.HistogramVec // apply time by kind
	lag         *prometheus.GaugeVec     // inputs waiting, by partition
	handles     prometheus.Gauge         // group handles in memory
	loads       prometheus.Counter       // groups loaded from jetstore
	stepBacks   prometheus.Counter       // partitions stepped back from

	done atomic.Uint64 // for the throughput line
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mls_worker_inputs_total",
			Help: "Inputs of the log done with (applied, recognized as applied, or rejected), by kind (command, message, welcome)."}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mls_worker_rejected_total",
			Help: "Rejections of an input for a member, by reason (the events' codes)."}, []string{"code"}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "mls_worker_redelivered_total",
			Help: "Inputs the server delivered more than once (a worker died, or an input was retried)."}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{Name: "mls_worker_retried_total",
			Help: "Inputs given back to be retried after a failure of the worker, NATS or storage."}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mls_worker_apply_seconds",
			Help: "Time to apply one input, publish its outputs and events, and acknowledge it.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)},
			[]string{"kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mls_worker_partition_lag",
			Help: "Inputs of a partition not yet delivered to a worker."}, []string{"partition"}),
		handles: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mls_worker_group_handles",
			Help: "Group handles kept in memory between inputs (at most Config.MaxHandles)."}),
		loads: prometheus.NewCounter(prometheus.CounterOpts{Name: "mls_worker_group_loads_total",
			Help: "Groups loaded from jetstore because no current handle was in memory."}),
		stepBacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "mls_worker_step_backs_total",
			Help: "Times the worker stopped pulling a partition for a while because a batch could not be stored."}),
	}
	if reg != nil {
		reg.MustRegister(m.applied, m.rejected, m.redelivered, m.retried, m.latency, m.lag, m.handles, m.loads, m.stepBacks)
	}
	return m
}

func kindLabel(k events.InputKind) string {
	switch k {
	case events.InputCommand:
		return "command"
	case events.InputWelcome:
		return "welcome"
	case events.InputGroupInfo:
		return "groupinfo"
	}
	return "message"
}

// observe runs in the background: partition lag every interval, and a
// throughput line in the log.
func (w *Worker) observe(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := w.m.done.Swap(0)
			if n > 0 {
				w.log.Info("throughput", "inputs", n, "per_second", float64(n)/now.Sub(last).Seconds())
			}
			last = now
			for p := range w.cfg.Partitions {
				c, err := w.js.Consumer(ctx, events.DefaultLogStream, consumerName(p))
				if err != nil {
					continue
				}
				if ci, err := c.Info(ctx); err == nil {
					w.m.lag.WithLabelValues(strconv.Itoa(p)).Set(float64(ci.NumPending))
				}
			}
		}
	}
}
