package main

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/signet-dev/signet/server/servertest"
)

// signet bench drives each workload against the real server and reports
// results a script can read; the figures themselves live in docs/benchmarks.md.
func TestBenchCommandDrivesEachWorkload(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	// An identity token of any issuer the server trusts certifies the log
	// workload's key, without the development issuer's request token (an
	// empty --data has none).
	tok, err := p.Token(context.Background(), url.Values{"kind": {"github"}, "repository": {"bench/log"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"log", "--entries", "200"},
		{"log", "--entries", "200", "--identity-token", tok, "--data", t.TempDir()},
		{"ca", "--tokens", "20"},
		{"tsa"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			all := append([]string{"bench"}, args...)
			if !slices.Contains(all, "--data") {
				all = append(all, "--data", p.DataDir)
			}
			all = append(all, "--server", p.URL, "--clients", "2,4", "--duration", "500ms", "--warmup", "100ms", "-o", "json")
			r := runSignet(t, nil, all...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var out struct {
				Workload string `json:"workload"`
				Results  []struct {
					Clients   int     `json:"clients"`
					Requests  int64   `json:"requests"`
					Errors    int64   `json:"errors"`
					PerSecond float64 `json:"per_second"`
					P50       int64   `json:"p50_ns"`
				} `json:"results"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
			}
			if out.Workload != args[0] || len(out.Results) != 2 || out.Results[1].Clients != 4 {
				t.Fatalf("results: %+v", out)
			}
			for _, res := range out.Results {
				if res.Requests == 0 || res.Errors != 0 || res.PerSecond <= 0 || res.P50 <= 0 {
					t.Fatalf("result: %+v", res)
				}
			}
		})
	}

	// Without the issuer's request token the token-based workloads say how to get one.
	r := runSignet(t, nil, "bench", "ca", "--server", p.URL, "--data", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "--request-token") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	r = runSignet(t, nil, "bench", "ca", "--server", p.URL, "--identity-token", tok)
	if r.code != 2 || !strings.Contains(r.stderr, "--identity-token is for the log workload") {
		t.Fatalf("ca with --identity-token: exit %d: %s", r.code, r.stderr)
	}
}
