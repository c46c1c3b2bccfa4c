package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's Prometheus metrics; names are documented in
// docs/tekton.md and scraped by the tests.
type metrics struct {
	seen, signed, failed, skipped, retries *prometheus.CounterVec
	queueDepth                             prometheus.GaugeFunc
	latency                                *prometheus.HistogramVec
	leader                                 prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, depth func() float64) *metrics {
	kind := []string{"kind"}
	m := &metrics{
		seen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tekton_runs_seen_total", Help: "Completed runs the controller took up, by kind (taskrun, pipelinerun).",
		}, kind),
		signed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tekton_runs_signed_total", Help: "Runs whose subjects were signed and attested (annotated signet.dev/signed=true).",
		}, kind),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tekton_runs_failed_total", Help: "Runs marked signet.dev/signed=failed after the configured attempts.",
		}, kind),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tekton_runs_skipped_total", Help: "Completed runs not signed, by reason (failed-run, deleted).",
		}, []string{"kind", "reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tekton_sign_errors_total", Help: "Signing attempts that failed and were retried or given up.",
		}, kind),
		queueDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "signet_tekton_queue_depth", Help: "Runs waiting to be signed.",
		}, depth),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "signet_tekton_completion_to_signed_seconds",
			Help:    "Time from a run's completion to its signet.dev/signed=true annotation.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600},
		}, kind),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_tekton_leader", Help: "1 while this replica holds the Lease and signs, else 0.",
		}),
	}
	reg.MustRegister(m.seen, m.signed, m.failed, m.skipped, m.retries, m.queueDepth, m.latency, m.leader)
	return m
}
