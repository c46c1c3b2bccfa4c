package tlog

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	appended *prometheus.CounterVec
	rejected *prometheus.CounterVec
	latency  prometheus.Histogram
	treeSize prometheus.Gauge
	// loops: integration loops running (distributed storage).
	loops     prometheus.Gauge
	tileReads prometheus.Counter
	// witnessAnswers counts the witnesses' answers by witness and status.
	witnessAnswers *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tlog_entries_appended_total",
			Help: "Entries appended to the transparency log and acknowledged with an inclusion proof.",
		}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tlog_entries_rejected_total",
			Help: "Append requests refused or failed, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_tlog_append_duration_seconds",
			Help:    "Time from a valid entry being queued to its inclusion proof being ready.",
			Buckets: []float64{.005, .01, .025, .05, .1, .2, .3, .5, 1, 2.5, 5, 10},
		}),
		treeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_tlog_tree_size",
			Help: "Size of the newest tree the log has signed a checkpoint for.",
		}),
		loops: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "signet_tlog_integration_loops",
			Help: "tessera integration loops this server runs on distributed storage (storage.integrationLoops); 0 on the embedded storage.",
		}),
		tileReads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_tlog_proof_tile_reads_total",
			Help: "Tiles read from storage to build proofs (cache misses).",
		}),
		witnessAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tlog_witness_requests_total",
			Help: "Checkpoints sent to witnesses (C2SP tlog-witness add-checkpoint), by witness host and answer: an HTTP status, or error when unreachable.",
		}, []string{"witness", "answer"}),
	}
	for _, c := range []prometheus.Collector{m.appended, m.rejected, m.latency, m.treeSize, m.loops, m.tileReads, m.witnessAnswers} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Rejection reasons (label values of signet_tlog_entries_rejected_total).
const (
	reasonBadRequest  = "bad_request"
	reasonTooLarge    = "too_large"
	reasonUnsupported = "unsupported_kind"
	reasonInvalid     = "invalid_entry"
	reasonOverloaded  = "overloaded"
	reasonCanceled    = "canceled"
	reasonClosed      = "closed"
	reasonDuplicate   = "duplicate"
	reasonUnwitnessed = "unwitnessed"
	reasonUnavailable = "unavailable"
	reasonRateLimited = "rate_limited"
	reasonInternal    = "internal"
)
