// Package transport builds the HTTP client signet's service clients share:
// one connection pool (so a sign flow reuses one connection per server), an
// overall timeout, a bounded retry on connection errors and 5xx/429 answers,
// and the signet User-Agent. It also turns error answers into errors that
// quote the server's own message.
package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Version is the signet version sent in the User-Agent; the CLI sets it
// (or the release build with -ldflags "-X .../core/sign/transport.Version=v1.2.3").
var Version = "devel"

// Options configure NewClient. The zero value is usable.
type Options struct {
	// UserAgent defaults to "signet/<Version>".
	UserAgent string
	// Timeout bounds one whole call, retries included. Default 60s.
	Timeout time.Duration
	// Retries is how many times a failed attempt is repeated. Default 2;
	// a negative value disables retrying.
	Retries int
	// Backoff is the wait before the first retry, doubled each time. Default 200ms.
	Backoff time.Duration
	// Base is the underlying transport; default a dedicated clone of
	// http.DefaultTransport.
	Base http.RoundTripper
}

// NewClient returns an *http.Client configured by o.
func NewClient(o Options) *http.Client {
	if o.UserAgent == "" {
		o.UserAgent = "signet/" + Version
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 2
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff == 0 {
		o.Backoff = 200 * time.Millisecond
	}
	if o.Base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// A sign flow talks to a few hosts, some of them in parallel.
		t.MaxIdleConnsPerHost = 8
		o.Base = t
	}
	return &http.Client{
		Timeout:   o.Timeout,
		Transport: &retrying{base: o.Base, userAgent: o.UserAgent, retries: o.Retries, backoff: o.Backoff},
	}
}

type retrying struct {
	base      http.RoundTripper
	userAgent string
	retries   int
	backoff   time.Duration
}

// maxRetryAfter caps a server's Retry-After so a misbehaving server cannot
// stall a CI job.
const maxRetryAfter = 5 * time.Second

func (rt *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", rt.userAgent)
	}
	wait := rt.backoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 && req.Body != nil {
			if req.GetBody == nil {
				return nil, errors.New("transport: cannot retry a request whose body cannot be replayed")
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = body
		}
		resp, err := rt.base.RoundTrip(req)
		if attempt >= rt.retries || !retryable(req.Context(), resp, err) {
			return resp, err
		}
		delay := wait
		if resp != nil {
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s >= 0 {
				delay = min(time.Duration(s)*time.Second, maxRetryAfter)
			}
			// Drain so the connection can be reused for the retry.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t := time.NewTimer(delay)
		select {
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		case <-t.C:
		}
		wait *= 2
	}
}

func retryable(ctx context.Context, resp *http.Response, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		var netErr net.Error
		var opErr *net.OpError
		return errors.As(err, &opErr) || errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	}
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
}

// ServerError is an error answer from a service.
type ServerError struct {
	// Service names the service, e.g. "certificate authority (https://fulcio.example)".
	Service string
	Status  int
	// Message is the server's own message: the "message" of a
	// google.rpc.Status body, or the start of a plain-text body.
	Message string
}

func (e *ServerError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s answered HTTP %d: %s", e.Service, e.Status, msg)
}

// Temporary reports whether retrying later may succeed.
func (e *ServerError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// maxErrorBody bounds how much of an error body is read and quoted.
const maxErrorBody = 16 << 10

// ErrorFrom reads an error answer into a *ServerError. It closes nothing;
// the caller still owns resp.Body.
func ErrorFrom(service string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &ServerError{Service: service, Status: resp.StatusCode}
	var status struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &status) == nil && status.Message != "" {
		e.Message = status.Message
	} else {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 512 {
			e.Message = e.Message[:512] + "…"
		}
	}
	return e
}

// ReadBody reads at most limit bytes of a successful answer, failing if the
// body is longer: a service answer larger than that is not one we asked for.
func ReadBody(service string, resp *http.Response, limit int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", service, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s: the answer exceeds %d bytes", service, limit)
	}
	return body, nil
}

// CheckURL refuses a service URL that is not absolute http(s); what names
// the service in the error (e.g. "timestamp authority").
func CheckURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s URL %q is not an http(s) URL", what, raw)
	}
	return nil
}
