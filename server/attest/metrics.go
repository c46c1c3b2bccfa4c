package attest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	submissions   *prometheus.CounterVec
	queries       *prometheus.CounterVec
	submitSeconds prometheus.Histogram
	appendSeconds prometheus.Histogram
	records       prometheus.Gauge
	pending       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_attestations_submissions_total",
			Help: "Attestation submissions by result: created, duplicate, invalid, too_large, busy, log_rejected, log_unavailable, timestamp_unavailable, storage_unavailable, storage_error.",
		}, []string{"result"}),
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_attestations_queries_total",
			Help: "Attestation lookups by result: ok, invalid, not_found, storage_unavailable, storage_error.",
		}, []string{"result"}),
		submitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_attestations_submit_duration_seconds",
			Help:    "Time to validate, log and store an attestation that was created.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_attestations_log_append_duration_seconds",
			Help:    "Time the transparency log took to append an attestation's entry, including failures.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		records: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_attestations_stored",
			Help: "Attestations in the store.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_attestations_pending",
			Help: "Attestations whose log append started but that are not stored (in flight, or interrupted: resubmit to complete).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.submissions, m.queries, m.submitSeconds, m.appendSeconds, m.records, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
