package transport

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRetriesServerErrorsThenSucceeds(t *testing.T) {
	var calls atomic.Int32
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if r.Header.Get("User-Agent") != "signet/test" {
			t.Errorf("User-Agent %q", r.Header.Get("User-Agent"))
		}
		if calls.Add(1) < 3 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	c := NewClient(Options{UserAgent: "signet/test", Backoff: time.Millisecond})
	resp, err := c.Post(srv.URL, "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || calls.Load() != 3 {
		t.Fatalf("status %d after %d calls", resp.StatusCode, calls.Load())
	}
	for i, b := range bodies {
		if b != "payload" {
			t.Fatalf("attempt %d sent body %q; the body must be replayed", i, b)
		}
	}
}

func TestRetryIsBounded(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, `{"code":13,"message":"disk full"}`, http.StatusInternalServerError)
	}))
	defer srv.Close()
	c := NewClient(Options{Retries: 2, Backoff: time.Millisecond})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", calls.Load())
	}
	err = ErrorFrom("test service", resp)
	var se *ServerError
	if !errors.As(err, &se) || se.Status != 500 || se.Message != "disk full" || !se.Temporary() {
		t.Fatalf("err = %#v", err)
	}
	if err.Error() != "test service answered HTTP 500: disk full" {
		t.Fatalf("message %q", err.Error())
	}
}

func TestNoRetryOnClientError(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "plain text reason", http.StatusBadRequest)
	}))
	defer srv.Close()
	resp, err := NewClient(Options{Backoff: time.Millisecond}).Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if calls.Load() != 1 {
		t.Fatalf("%d calls for a 400", calls.Load())
	}
	if err := ErrorFrom("svc", resp); !strings.Contains(err.Error(), "HTTP 400: plain text reason") {
		t.Fatalf("err = %v", err)
	}
}

func TestRetriesConnectionErrors(t *testing.T) {
	// A listener that is closed: every dial is refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var attempts atomic.Int32
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		attempts.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
	_, err = NewClient(Options{Base: base, Retries: 2, Backoff: time.Millisecond}).Get("http://" + addr)
	if err == nil || attempts.Load() != 3 {
		t.Fatalf("err %v after %d attempts", err, attempts.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestReadBodyLimit(t *testing.T) {
	resp := &http.Response{Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 11)))}
	if _, err := ReadBody("svc", resp, 10); err == nil || !strings.Contains(err.Error(), "exceeds 10 bytes") {
		t.Fatalf("err = %v", err)
	}
}
