package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	lg "github.com/signet-dev/signet/server/loadgen"
	"github.com/signet-dev/signet/server/servertest"
)

// BenchmarkScaleOutLog measures log appends (`signet bench log`, each
// answer with its inclusion proof and checkpoint) through a loopback
// balancer to 1, 2 and 3 servers on distributed storage (MariaDB and
// versitygw on the same machine), each count on an empty log of its own,
// and, for comparison, one server on the embedded storage. docs/benchmarks.md
// records the figures and how to read them:
//
//	go test ./server -run '^$' -bench BenchmarkScaleOutLog -benchtime 1x -timeout 30m
//
// SIGNET_BENCH_DURATION (default 15s) is the measured time per client count.
func BenchmarkScaleOutLog(b *testing.B) {
	duration := 15 * time.Second
	if d, err := time.ParseDuration(os.Getenv("SIGNET_BENCH_DURATION")); err == nil {
		duration = d
	}
	db, objects := distributedBackends(b)
	bin := servertest.Binary(b)
	keys := sharedKeys(b)
	dir := b.TempDir()
	iss := newTestIssuer(b, dir)
	identity := iss.config("url: https://ci.example.com", "type: email")
	run := func(b *testing.B, url string) {
		tok := iss.mint(b, emailClaims("https://ci.example.com", "bench@example.com"))
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "bench", "log", "--server", url, "--identity-token", tok, "--clients", "16,256",
			"--duration", duration.String(), "--warmup", "3s", "--entries", "30000", "-o", "json")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("signet bench log: %v\n%s%s", err, stdout.String(), stderr.String())
		}
		var out struct{ Results []lg.Result }
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			b.Fatal(err)
		}
		for _, r := range out.Results {
			c := strconv.Itoa(r.Clients)
			b.ReportMetric(r.PerSecond, "entries/s@"+c)
			b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms@"+c)
			b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms@"+c)
			b.Logf("%s", r)
		}
	}
	b.Run("embedded", func(b *testing.B) {
		addr := servertest.FreeAddr(b)
		cfg := filepath.Join(dir, "embedded.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("url: http://%s\n%s", addr, identity)), 0o600); err != nil {
			b.Fatal(err)
		}
		p, err := servertest.StartArgsErr(bin, "--config", cfg, "--addr", addr, "--data", b.TempDir(), "--log-level", "warn")
		if err != nil {
			b.Fatal(err)
		}
		defer p.Kill()
		for range b.N {
			run(b, p.URL)
		}
	})
	for n := 1; n <= 3; n++ {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			name := fmt.Sprintf("bench%d", n)
			db.CreateDatabase(b, name)
			db.CreateDatabase(b, name+"_ct")
			lb := newBalancer(b)
			cfg := filepath.Join(dir, name+".yaml")
			yml := fmt.Sprintf("url: %s\n%sstorage:\n  driver: distributed\n  database:\n    dsn: %q\n  ctDatabase:\n    dsn: %q\n  objects:\n    bucket: signet\n    prefix: %s/\n    endpoint: %s\n    pathStyle: true\n",
				lb.srv.URL, identity, db.DSN(name), db.DSN(name+"_ct"), name, objects.Endpoint())
			if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
				b.Fatal(err)
			}
			for range n {
				addr, data := servertest.FreeAddr(b), b.TempDir()
				copyDir(b, keys, filepath.Join(data, "keys"))
				lb.add(addr)
				p, err := servertest.StartArgsErr(bin, "--config", cfg, "--addr", addr, "--data", data, "--log-level", "warn")
				if err != nil {
					b.Fatal(err)
				}
				defer p.Kill()
			}
			for range b.N {
				run(b, lb.srv.URL)
			}
		})
	}
}
