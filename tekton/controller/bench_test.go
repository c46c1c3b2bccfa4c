package controller_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektoninformers "github.com/tektoncd/pipeline/pkg/client/informers/externalversions"
	"k8s.io/client-go/tools/cache"

	"github.com/signet-dev/signet/internal/proccpu"
)

// The controller's throughput and latency on the real apiserver, with its
// default settings and the whole keyless flow per run. Run it with
//
//	go test ./tekton/controller -run '^$' -bench . -benchtime 1x -timeout 60m
//
// SIGNET_TEKTON_BENCH_RUNS (default 2000) sets the burst size,
// SIGNET_TEKTON_BENCH_BACKLOG (default 5000) the backlog,
// SIGNET_TEKTON_BENCH_PROFILE=DIR takes CPU profiles of the controller,
// the server and kube-apiserver during the backlog's drain, SIGNET_TEKTON_BENCH_ARGS adds
// controller flags to the backlog's (e.g. "--workers 64"). Results are in
// docs/benchmarks.md.

func benchRuns(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// pushImages pushes n images (each run builds its own) with parallel
// clients and returns their digests.
func (e *env) pushImages(b testing.TB, repo string, n int) []string {
	b.Helper()
	digests := make([]string, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				digests[i] = e.pushImageTag(b, repo, fmt.Sprintf("build-%05d", i))
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	return digests
}

// createRuns makes a completed TaskRun for each image, with parallel
// clients, and returns when all exist.
func (e *env) createRuns(b testing.TB, ns, repo string, digests []string) {
	b.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				e.taskRun(b, ns, fmt.Sprintf("run-%05d", i), runSpec{results: map[string]string{
					"IMAGE_URL": e.reg.Ref(repo), "IMAGE_DIGEST": digests[i],
				}})
			}
		})
	}
	n := len(digests)
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}

// watchSigned counts runs marked signed in ns and records, for each, the
// time from its completion to the annotation as an informer saw it (an
// informer, not a bare watch: it survives the apiserver closing watches).
func (e *env) watchSigned(b testing.TB, ns string, n int) (done chan struct{}, latencies func() []time.Duration) {
	b.Helper()
	done = make(chan struct{})
	var mu sync.Mutex
	var lat []time.Duration
	seen := map[string]bool{}
	stop := make(chan struct{})
	f := tektoninformers.NewSharedInformerFactoryWithOptions(e.tekton, 0, tektoninformers.WithNamespace(ns))
	inf := f.Tekton().V1().TaskRuns().Informer()
	note := func(obj any) {
		tr, ok := obj.(*pipelinev1.TaskRun)
		if !ok || tr.Annotations["signet.dev/signed"] == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[tr.Name] {
			return
		}
		seen[tr.Name] = true
		if tr.Status.CompletionTime != nil {
			lat = append(lat, time.Since(tr.Status.CompletionTime.Time))
		}
		if len(seen) == n {
			close(done)
			close(stop)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: note, UpdateFunc: func(_, o any) { note(o) }}); err != nil {
		b.Fatal(err)
	}
	f.Start(stop)
	b.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	})
	return done, func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(slices.Values(lat))
	}
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(kb) / 1024
		}
	}
	return 0
}

// reportCPU reports the CPU seconds per run each component spent since
// before, as metrics named ms-cpu-<command>.
func reportCPU(b *testing.B, before map[string]float64, runs int) {
	for k, d := range proccpu.Since(before, 0.05) {
		b.ReportMetric(d*1000/float64(runs), "ms-cpu-"+strings.ReplaceAll(k, " ", "_"))
	}
}

// apiRequests reads the apiserver's request counters by verb and resource
// (apiserver_request_total): what the controller costs the cluster.
func (e *env) apiRequests(b testing.TB) map[string]float64 {
	raw, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(b.Context())
	if err != nil {
		b.Fatalf("apiserver metrics: %v", err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(raw), "\n") {
		labels, ok := strings.CutPrefix(l, "apiserver_request_total{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(labels, '}')
		v, err := strconv.ParseFloat(strings.TrimSpace(labels[end+1:]), 64)
		if end < 0 || err != nil {
			continue
		}
		var verb, res, sub string
		for _, kv := range strings.Split(labels[:end], ",") {
			k, val, _ := strings.Cut(kv, "=")
			val = strings.Trim(val, `"`)
			switch k {
			case "verb":
				verb = val
			case "resource":
				res = val
			case "subresource":
				sub = val
			}
		}
		if sub != "" {
			res += "/" + sub
		}
		out[verb+" "+res] += v
	}
	return out
}

// logAPIRequests logs the apiserver requests per run since before.
func (e *env) logAPIRequests(b testing.TB, before map[string]float64, runs int) {
	for k, v := range e.apiRequests(b) {
		if d := v - before[k]; d/float64(runs) >= 0.01 {
			b.Logf("apiserver %-40s %6.2f/run", k, d/float64(runs))
		}
	}
}

// profile, when SIGNET_TEKTON_BENCH_PROFILE names a directory, takes CPU
// profiles of the controller, the server and kube-apiserver for 15 s, starting 3 s into the
// drain, and writes them there (go tool pprof DIR/controller.pprof).
func (e *env) profile(b testing.TB, p *proc) (wait func()) {
	dir := os.Getenv("SIGNET_TEKTON_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	get := func(url, file string) {
		time.Sleep(3 * time.Second)
		r, err := http.Get(url + "/debug/pprof/profile?seconds=15")
		if err != nil {
			b.Errorf("profiling %s: %v", file, err)
			return
		}
		defer r.Body.Close()
		data, err := io.ReadAll(r.Body)
		if err == nil && r.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", r.Status, data)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, file), data, 0o644)
		}
		if err != nil {
			b.Errorf("profiling %s: %v", file, err)
		}
	}
	wg.Go(func() { get(p.metrics, "controller.pprof") })
	wg.Go(func() { get("http://"+e.serverAdmin, "server.pprof") })
	wg.Go(func() {
		// kube-apiserver serves pprof (--profiling, on by default) to admins.
		time.Sleep(3 * time.Second)
		raw, err := e.kube.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "15").Timeout(time.Minute).DoRaw(b.Context())
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "kube-apiserver.pprof"), raw, 0o644)
		}
		if err != nil {
			b.Errorf("profiling kube-apiserver: %v", err)
		}
	})
	return wg.Wait
}

// profileArgs turns on the controller's profiling when the benchmark takes
// profiles.
func profileArgs() []string {
	if os.Getenv("SIGNET_TEKTON_BENCH_PROFILE") == "" {
		return nil
	}
	return []string{"--profiling"}
}

// peakRSS samples a process's RSS until stop is closed.
func peakRSS(pid int, stop chan struct{}) func() float64 {
	var mu sync.Mutex
	peak := 0.0
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				r := rssMiB(pid)
				mu.Lock()
				peak = max(peak, r)
				mu.Unlock()
			}
		}
	}()
	return func() float64 { mu.Lock(); defer mu.Unlock(); return peak }
}

// BenchmarkBurst: n completed TaskRuns created at once, the controller
// running: time until all are signed, and completion-to-signed latency.
func BenchmarkBurst(b *testing.B) {
	e := getEnv(b)
	n := benchRuns("SIGNET_TEKTON_BENCH_RUNS", 2000)
	for i := range b.N {
		ns := fmt.Sprintf("burst-%d-%d", time.Now().UnixNano(), i)
		e.namespace(b, ns)
		p := e.controller(b, ns)
		digests := e.pushImages(b, "bench/"+ns, n)
		done, lat := e.watchSigned(b, ns, n)
		stop := make(chan struct{})
		peak := peakRSS(p.cmd.Process.Pid, stop)
		api := e.apiRequests(b)
		cpu := proccpu.ByCommand()
		start := time.Now()
		e.createRuns(b, ns, "bench/"+ns, digests)
		created := time.Since(start)
		select {
		case <-done:
		case <-time.After(30 * time.Minute):
			b.Fatalf("not all %d runs signed within 30 minutes", n)
		}
		took := time.Since(start)
		close(stop)
		l := lat()
		b.ReportMetric(float64(n)/took.Seconds(), "runs/s")
		b.ReportMetric(took.Seconds(), "s-total")
		b.ReportMetric(created.Seconds(), "s-creating")
		b.ReportMetric(pct(l, 0.5).Seconds(), "s-p50")
		b.ReportMetric(pct(l, 0.99).Seconds(), "s-p99")
		b.ReportMetric(peak(), "MiB-peak-rss")
		reportCPU(b, cpu, n)
		e.logAPIRequests(b, api, n)
		p.stop(b)
	}
}

// BenchmarkSteady: runs completing at 10/s; completion-to-signed latency.
func BenchmarkSteady(b *testing.B) {
	e := getEnv(b)
	const rate, seconds = 10, 30
	for i := range b.N {
		ns := fmt.Sprintf("steady-%d-%d", time.Now().UnixNano(), i)
		e.namespace(b, ns)
		p := e.controller(b, ns)
		digests := e.pushImages(b, "bench/"+ns, rate*seconds)
		done, lat := e.watchSigned(b, ns, rate*seconds)
		tick := time.NewTicker(time.Second / rate)
		for j := range rate * seconds {
			<-tick.C
			go func() {
				if _, err := e.taskRunErr(ns, fmt.Sprintf("run-%05d", j), runSpec{results: map[string]string{"IMAGE_URL": e.reg.Ref("bench/" + ns), "IMAGE_DIGEST": digests[j]}}); err != nil {
					b.Error(err)
				}
			}()
		}
		tick.Stop()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatal("not all runs signed within 5 minutes")
		}
		l := lat()
		b.ReportMetric(pct(l, 0.5).Seconds(), "s-p50")
		b.ReportMetric(pct(l, 0.99).Seconds(), "s-p99")
		p.stop(b)
	}
}

// BenchmarkBacklog: n completed runs already in the cluster when the
// controller starts: time to drain them and the controller's peak RSS.
func BenchmarkBacklog(b *testing.B) {
	e := getEnv(b)
	n := benchRuns("SIGNET_TEKTON_BENCH_BACKLOG", 5000)
	for i := range b.N {
		ns := fmt.Sprintf("backlog-%d-%d", time.Now().UnixNano(), i)
		e.namespace(b, ns)
		e.createRuns(b, ns, "bench/"+ns, e.pushImages(b, "bench/"+ns, n))
		done, _ := e.watchSigned(b, ns, n)
		api := e.apiRequests(b)
		cpu := proccpu.ByCommand()
		start := time.Now()
		p := e.controller(b, ns, append(profileArgs(), strings.Fields(os.Getenv("SIGNET_TEKTON_BENCH_ARGS"))...)...)
		profiled := e.profile(b, p)
		stop := make(chan struct{})
		peak := peakRSS(p.cmd.Process.Pid, stop)
		select {
		case <-done:
		case <-time.After(60 * time.Minute):
			b.Fatalf("backlog of %d not drained within an hour", n)
		}
		took := time.Since(start)
		close(stop)
		b.ReportMetric(float64(n)/took.Seconds(), "runs/s")
		b.ReportMetric(took.Seconds(), "s-total")
		b.ReportMetric(peak(), "MiB-peak-rss")
		reportCPU(b, cpu, n)
		e.logAPIRequests(b, api, n)
		profiled()
		p.stop(b)
		keepLog(b, p)
	}
}

// keepLog writes the controller's log to $SIGNET_TEKTON_BENCH_LOG, for
// --log-level debug step timings (SIGNET_TEKTON_LOG_LEVEL=debug).
func keepLog(b testing.TB, p *proc) {
	if f := os.Getenv("SIGNET_TEKTON_BENCH_LOG"); f != "" {
		if err := os.WriteFile(f, []byte(p.logs()), 0o644); err != nil {
			b.Error(err)
		}
	}
}
