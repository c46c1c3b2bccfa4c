package server_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/signet-dev/signet/server/servertest"
	"github.com/signet-dev/signet/server/storage"
)

// documentedMetric is one row of the metrics table in docs/server.md.
type documentedMetric struct {
	name, typ string
	labels    []string
}

// documentedMetrics reads the metrics table of docs/server.md.
func documentedMetrics(t *testing.T) []documentedMetric {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "server.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\s*\\| `(signet_[a-z_]+)` \\| ([a-z]+) \\|([^|]*)\\|")
	var out []documentedMetric
	for _, m := range row.FindAllStringSubmatch(string(raw), -1) {
		d := documentedMetric{name: m[1], typ: m[2]}
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				d.labels = append(d.labels, l)
			}
		}
		slices.Sort(d.labels)
		out = append(out, d)
	}
	if len(out) < 10 {
		t.Fatalf("docs/server.md lists %d metrics; the table was not found", len(out))
	}
	return out
}

// scrape parses the server's /metrics.
func scrape(t *testing.T, p *servertest.Process) map[string]*dto.MetricFamily {
	t.Helper()
	body, err := p.Get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v", err)
	}
	return fams
}

// Every metric docs/server.md names is on /metrics of the running server
// with that name, type and labels once each service has had traffic, and
// every signet_ metric served is documented.
// conditionalMetrics have series only in a setup this test does not run,
// and the test that scrapes them there.
var conditionalMetrics = map[string]string{
	"signet_tlog_witness_requests_total": "cmd/signet TestWitnessedCheckpoints (a log with a real witness)",
}

func TestMetricsAreDocumented(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")

	// Traffic that gives every labelled metric a series: a stored
	// attestation (certificate, timestamp, log entry, attestation), a
	// logged entry, a query, a minted token, and one refusal per service.
	storeAttestation(t, p, strings.Repeat("ab", 32))
	appendEntries(t, p, 1)
	if _, err := p.Get("/api/v2/attestations?digest=sha256:" + strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ path, ct, body string }{
		{"/api/v2/signingCert", "application/json", `{"credentials":{"oidcIdentityToken":"not-a-jwt"}}`},
		{"/api/v2/log/entries", "application/json", `{}`},
		{"/api/v2/attestations", "application/json", `{}`},
		{"/api/v1/timestamp", "application/timestamp-query", "not DER"},
	} {
		resp, err := http.Post(p.URL+r.path, r.ct, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("POST %s %q was accepted", r.path, r.body)
		}
	}
	if resp, err := http.Get(p.URL + "/dev/oidc/token?audience=sigstore&kind=github"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token without the request token: HTTP %d", resp.StatusCode)
	}

	fams := scrape(t, p)
	docs := documentedMetrics(t)
	documented := map[string]bool{}
	for _, d := range docs {
		documented[d.name] = true
		f, ok := fams[d.name]
		if !ok && conditionalMetrics[d.name] != "" {
			continue
		}
		if !ok {
			t.Errorf("%s is documented but not on /metrics", d.name)
			continue
		}
		if got := strings.ToLower(f.GetType().String()); got != d.typ {
			t.Errorf("%s is a %s on /metrics, documented as a %s", d.name, got, d.typ)
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName())
			}
			slices.Sort(labels)
			if !slices.Equal(labels, d.labels) {
				t.Errorf("%s has labels %v on /metrics, documented %v", d.name, labels, d.labels)
				break
			}
		}
	}
	var goMetrics, processMetrics bool
	for name := range fams {
		goMetrics = goMetrics || strings.HasPrefix(name, "go_")
		processMetrics = processMetrics || strings.HasPrefix(name, "process_")
		if strings.HasPrefix(name, "signet_") && !documented[name] {
			t.Errorf("%s is on /metrics but not in docs/server.md", name)
		}
	}
	if !goMetrics || !processMetrics {
		t.Errorf("Go collector present %v, process collector present %v; docs/server.md promises both", goMetrics, processMetrics)
	}
}

// The expiry gauges are the certificates' own NotAfter, and the build is
// named.
func TestExpiryAndBuildInfoGauges(t *testing.T) {
	data := t.TempDir()
	p := servertest.Start(t, data, "--dev-oidc")
	fams := scrape(t, p)
	want := map[string]string{"ca_issuing": "ca-intermediate.pem", "ca_root": "ca-root.pem", "tsa_signing": "tsa.pem", "tsa_root": "tsa-root.pem"}
	got := map[string]float64{}
	for _, m := range fams["signet_certificate_expiry_timestamp_seconds"].GetMetric() {
		got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	for name, file := range want {
		certs, err := storage.LoadCertificates(filepath.Join(data, "keys", file))
		if err != nil {
			t.Fatal(err)
		}
		if got[name] != float64(certs[0].NotAfter.Unix()) {
			t.Errorf("%s expiry %v, want the certificate's NotAfter %d", name, got[name], certs[0].NotAfter.Unix())
		}
	}
	if len(got) != 4 {
		t.Errorf("expiry gauges for %v, want ca_issuing, ca_root, tsa_signing, tsa_root", got)
	}
	bi := fams["signet_build_info"].GetMetric()
	if len(bi) != 1 || bi[0].GetGauge().GetValue() != 1 {
		t.Fatalf("signet_build_info %v", bi)
	}
}

// Every answer names its request, and the request log line and the
// services' lines about it carry the same ID; a caller's own plain ID is
// kept, anything else replaced.
func TestRequestIDs(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc", "--log-level", "info")
	ask := func(id string) string {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/api/v2/nothing-here", nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Request-Id")
	}
	if got := ask("lb-7f3a.2"); got != "lb-7f3a.2" {
		t.Errorf("a caller's plain ID became %q", got)
	}
	a, b := ask(""), ask("<script>")
	if len(a) != 24 || len(b) != 24 || a == b || strings.Contains(b, "<") {
		t.Errorf("new IDs %q and %q, want two distinct 24-hex IDs", a, b)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.Stderr(), `"request_id":"`+a+`"`); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no request log line with request_id %s:\n%s", a, p.Stderr())
		}
	}

	// A service's own line about the request carries its ID too.
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/api/v2/signingCert", strings.NewReader(`{"credentials":{"oidcIdentityToken":"not-a-token"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "ca-refusal-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	serviceLine := func() bool {
		for _, line := range strings.Split(p.Stderr(), "\n") {
			if strings.Contains(line, `"msg":"signing certificate refused"`) && strings.Contains(line, `"service":"ca"`) && strings.Contains(line, `"request_id":"ca-refusal-1"`) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !serviceLine(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the CA's refusal line does not carry request_id ca-refusal-1:\n%s", p.Stderr())
		}
	}
}

// scrapeOnce is scrape on a connection of its own that is closed after,
// so it holds no connection slot.
func scrapeOnce(t *testing.T, p *servertest.Process) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return fams
}
