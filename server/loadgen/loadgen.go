// Package loadgen drives a running signet server's HTTP APIs with many
// concurrent clients and reports throughput and latency percentiles. It is
// the engine of `signet bench`, which runs as a separate process from the
// server so that the measurement includes the real network stack.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one prepared HTTP request body for a POST.
type Request struct {
	Path        string
	ContentType string
	Body        []byte
}

// Options shape one run.
type Options struct {
	Server   string        // base URL
	Clients  int           // concurrent clients, each with its own connection
	Duration time.Duration // measured window
	Warmup   time.Duration // unmeasured lead-in
	// Next returns the request client c sends as its i-th request.
	Next func(c, i int) Request
	// Check validates a response body; a failure counts as an error.
	Check func(status int, body []byte) error
	// Progress, if set, is called about once a second during the run.
	Progress func(done int64, elapsed time.Duration)
}

// Result summarises a run.
type Result struct {
	Clients    int           `json:"clients"`
	Duration   time.Duration `json:"duration_ns"`
	Requests   int64         `json:"requests"`
	Errors     int64         `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	PerSecond  float64       `json:"per_second"`
	P50        time.Duration `json:"p50_ns"`
	P90        time.Duration `json:"p90_ns"`
	P99        time.Duration `json:"p99_ns"`
	Max        time.Duration `json:"max_ns"`
}

func (r Result) String() string {
	s := fmt.Sprintf("%d clients, %s: %d requests, %.0f/s, p50 %s, p90 %s, p99 %s, max %s, %d errors",
		r.Clients, r.Duration.Round(time.Millisecond), r.Requests, r.PerSecond,
		ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.Errors)
	if r.FirstError != "" {
		s += " (first: " + r.FirstError + ")"
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// Run executes the load and returns the measured result.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Clients <= 0 || o.Duration <= 0 || o.Next == nil {
		return Result{}, fmt.Errorf("loadgen: clients, duration and a request source are required")
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        o.Clients,
		MaxIdleConnsPerHost: o.Clients,
		MaxConnsPerHost:     o.Clients,
		IdleConnTimeout:     time.Minute,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	var (
		done     atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Value
		mu       sync.Mutex
		lats     = make([]time.Duration, 0, 1<<16)
		wg       sync.WaitGroup
	)
	stopProgress := make(chan struct{})
	if o.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					o.Progress(done.Load(), time.Since(start))
				case <-stopProgress:
					return
				}
			}
		}()
	}
	for c := 0; c < o.Clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			for i := 0; ; i++ {
				if ctx.Err() != nil {
					break
				}
				now := time.Now()
				if now.After(end) {
					break
				}
				req := o.Next(c, i)
				t0 := time.Now()
				status, body, err := post(ctx, client, o.Server+req.Path, req.ContentType, req.Body)
				lat := time.Since(t0)
				if err == nil && o.Check != nil {
					err = o.Check(status, body)
				}
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				done.Add(1)
				local = append(local, lat)
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	close(stopProgress)

	slices.Sort(lats)
	r := Result{Clients: o.Clients, Duration: o.Duration, Requests: int64(len(lats)), Errors: errs.Load()}
	if fe, ok := firstErr.Load().(string); ok {
		r.FirstError = fe
	}
	r.PerSecond = float64(r.Requests) / o.Duration.Seconds()
	if len(lats) > 0 {
		pct := func(p float64) time.Duration { return lats[min(len(lats)-1, int(p*float64(len(lats))))] }
		r.P50, r.P90, r.P99, r.Max = pct(.50), pct(.90), pct(.99), lats[len(lats)-1]
	}
	return r, ctx.Err()
}

func post(ctx context.Context, c *http.Client, url, contentType string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, b, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return resp.StatusCode, b, nil
}

type atomicCounter struct{ n atomic.Uint64 }

func (a *atomicCounter) inc() uint64 { return a.n.Add(1) - 1 }
