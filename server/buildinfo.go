package server

import (
	"crypto/x509"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the release the server was built as; cmd/signet sets it from
// its own (-ldflags "-X main.version=...").
var Version = "devel"

// registerBuildAndExpiry exports signet_build_info (which binary runs) and
// signet_certificate_expiry_timestamp_seconds for the certificates the
// server signs under, so an operator alerts on expiry before clients see it.
func registerBuildAndExpiry(reg prometheus.Registerer, certs map[string]*x509.Certificate) error {
	commit := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "signet_build_info",
		Help: "Always 1; the labels name the running build.",
	}, []string{"version", "commit", "goversion"})
	info.WithLabelValues(Version, commit, runtime.Version()).Set(1)
	expiry := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "signet_certificate_expiry_timestamp_seconds",
		Help: "NotAfter of the certificates the server signs under, as a Unix time: the CA's issuing certificate and root, the TSA's signing certificate and root.",
	}, []string{"certificate"})
	for name, c := range certs {
		expiry.WithLabelValues(name).Set(float64(c.NotAfter.Unix()))
	}
	for _, c := range []prometheus.Collector{info, expiry} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
