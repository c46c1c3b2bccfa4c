package oci

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// pingCache answers go-containerregistry's registry pings (an anonymous GET
// /v2/ that learns the registry's auth challenge) from what the same
// registry answered within the last minute. Every transport go-containerregistry
// builds pings, and a process that makes a client per job (the Tekton
// controller, one per run) would otherwise ping several times per job: on a
// plain-HTTP registry each ping is also a failed HTTPS handshake first. The
// challenge does not depend on who asks, so it is shared across clients; a
// failed ping is not remembered, except that HTTPS failing where HTTP then
// answered marks the registry as plain HTTP for the same minute.
type pingCache struct{ base http.RoundTripper }

const pingTTL = time.Minute

type pingAnswer struct {
	status int
	header http.Header
	at     time.Time
}

var pings = struct {
	sync.Mutex
	answers    map[string]pingAnswer // scheme://host
	httpsFails map[string]time.Time  // host: HTTPS ping failed at
	httpOnly   map[string]time.Time  // host: HTTPS failed and HTTP answered at
}{answers: map[string]pingAnswer{}, httpsFails: map[string]time.Time{}, httpOnly: map[string]time.Time{}}

var errHTTPOnly = errors.New("registry answered over plain HTTP only (remembered)")

func isPing(req *http.Request) bool {
	return req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.URL.RawQuery == "" && req.Header.Get("Authorization") == ""
}

func (p *pingCache) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isPing(req) {
		return p.base.RoundTrip(req)
	}
	key, host := req.URL.Scheme+"://"+req.URL.Host, req.URL.Host
	now := time.Now()
	pings.Lock()
	if a, ok := pings.answers[key]; ok && now.Sub(a.at) < pingTTL {
		pings.Unlock()
		return &http.Response{
			Status: http.StatusText(a.status), StatusCode: a.status, Header: a.header.Clone(),
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Body: io.NopCloser(bytes.NewReader(nil)), Request: req,
		}, nil
	}
	if t, ok := pings.httpOnly[host]; ok && req.URL.Scheme == "https" && now.Sub(t) < pingTTL {
		pings.Unlock()
		return nil, errHTTPOnly
	}
	pings.Unlock()

	resp, err := p.base.RoundTrip(req)
	pings.Lock()
	defer pings.Unlock()
	if len(pings.answers) > 1024 || len(pings.httpsFails) > 1024 || len(pings.httpOnly) > 1024 {
		clear(pings.answers)
		clear(pings.httpsFails)
		clear(pings.httpOnly)
	}
	if err != nil {
		if req.URL.Scheme == "https" {
			pings.httpsFails[host] = now
		}
		return nil, err
	}
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
		pings.answers[key] = pingAnswer{status: resp.StatusCode, header: resp.Header.Clone(), at: now}
		if t, ok := pings.httpsFails[host]; ok && req.URL.Scheme == "http" && now.Sub(t) < pingTTL {
			pings.httpOnly[host] = now
		}
	}
	return resp, nil
}
