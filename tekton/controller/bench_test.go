package controller_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tektoninformers "github.com/tektoncd/pipeline/pkg/client/informers/externalversions"
	"k8s.io/client-go/tools/cache"
)

// The controller's throughput and latency on the real apiserver, with its
// default settings and the whole keyless flow per run. Run it with
//
//	go test ./tekton/controller -run '^$' -bench . -benchtime 1x -timeout 60m
//
// SIGNET_TEKTON_BENCH_RUNS (default 2000) sets the burst size,
// SIGNET_TEKTON_BENCH_BACKLOG (default 5000) the backlog. Results are in
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
		start := time.Now()
		p := e.controller(b, ns)
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
