package tsa

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	signing  prometheus.Histogram
	logging  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "signet",
			Subsystem: "tsa",
			Name:      "requests_total",
			Help:      "Timestamp requests by result: issued, or the reason they were refused.",
		}, []string{"result"}),
		signing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "signet",
			Subsystem: "tsa",
			Name:      "signing_seconds",
			Help:      "Time to build and sign one timestamp token.",
			Buckets:   prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
		logging: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "signet",
			Subsystem: "tsa",
			Name:      "logging_seconds",
			Help:      "Time to record one timestamp in the transparency log (time transparency), inclusion proof included.",
			Buckets:   []float64{.005, .01, .025, .05, .1, .2, .5, 1, 2.5, 5},
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.signing, m.logging} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
