package tlog

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppendHTTP measures appends through the HTTP handler with a fixed
// number of concurrent clients, each waiting for its 201 (inclusion proof
// included) before sending the next. Clients and server share the machine.
//
//	go test -run '^$' -bench AppendHTTP -benchtime 20000x ./server/tlog/
func BenchmarkAppendHTTP(b *testing.B) {
	for _, clients := range []int{16, 256} {
		for _, await := range []bool{false, true} {
			b.Run(fmt.Sprintf("clients=%d/awaitPublication=%v", clients, await), func(b *testing.B) {
				benchAppend(b, clients, await)
			})
		}
	}
}

func benchAppend(b *testing.B, clients int, await bool) {
	tl := openTestLog(b, "", nil, func(o *Options) { o.AwaitPublication = await })
	s := newECDSASigner(b)
	// Distinct signed requests, prepared up front so client-side signing does
	// not compete with the server for CPU.
	bodies := make([][]byte, 1024)
	for i := range bodies {
		bodies[i] = createEntryJSON(b, s.request(b, []byte(fmt.Sprintf("artifact %d", i))))
	}
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	url := tl.srv.URL + "/api/v2/log/entries"

	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				resp, err := c.Post(url, "application/json", bytes.NewReader(bodies[i%int64(len(bodies))]))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					failed.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d appends failed", n, b.N)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(pct(1), "max_ms")
}
