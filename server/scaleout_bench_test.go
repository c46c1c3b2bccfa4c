package server_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	sqlDB, err := sql.Open("mysql", db.DSN(""))
	if err != nil {
		b.Fatal(err)
	}
	defer sqlDB.Close()
	status := func(name string) float64 {
		var k string
		var v float64
		if err := sqlDB.QueryRow("SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(&k, &v); err != nil {
			b.Fatal(err)
		}
		return v
	}
	isServer := func(args []string) bool { return len(args) > 1 && args[0] == bin && args[1] == "server" }
	isDB := func(args []string) bool { return len(args) > 0 && filepath.Base(args[0]) == "mariadbd" }
	isS3 := func(args []string) bool { return len(args) > 0 && filepath.Base(args[0]) == "versitygw" }
	run := func(b *testing.B, url string) {
		tok := iss.mint(b, emailClaims("https://ci.example.com", "bench@example.com"))
		// What one entry costs, for the model in docs/benchmarks.md: CPU
		// of the servers, the database and the object store, and the
		// database's statements and commits, over the whole run.
		cpu0 := [3]time.Duration{processCPU(b, isServer), processCPU(b, isDB), processCPU(b, isS3)}
		q0, c0 := status("Questions"), status("Com_commit")
		size0 := treeSize(b, url)
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
		// Every entry the run appended, warm-ups included.
		entries := float64(treeSize(b, url) - size0)
		perEntry := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / entries }
		b.ReportMetric(perEntry(processCPU(b, isServer)-cpu0[0]), "server-cpu-ms/entry")
		b.ReportMetric(perEntry(processCPU(b, isDB)-cpu0[1]), "db-cpu-ms/entry")
		b.ReportMetric(perEntry(processCPU(b, isS3)-cpu0[2]), "s3-cpu-ms/entry")
		b.ReportMetric((status("Questions")-q0)/entries, "db-statements/entry")
		b.ReportMetric((status("Com_commit")-c0)/entries, "db-commits/entry")
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
			yml := distributedConfig(lb.srv.URL, identity, db, objects, name, name+"/")
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

// processCPU is the user and system CPU time so far of the processes
// whose command line match picks.
func processCPU(b *testing.B, match func(args []string) bool) time.Duration {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var ticks int64
	for _, d := range dirs {
		if _, err := strconv.Atoi(d.Name()); err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !match(strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name in parentheses; utime and stime
		// are the 14th and 15th of the line.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ
}

// treeSize is the size of the log's current checkpoint at url.
func treeSize(b *testing.B, url string) uint64 {
	resp, err := http.Get(url + "/api/v2/checkpoint")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	lines := strings.SplitN(string(body), "\n", 3)
	if resp.StatusCode != http.StatusOK || len(lines) < 3 {
		b.Fatalf("checkpoint: %d %.200s", resp.StatusCode, body)
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
