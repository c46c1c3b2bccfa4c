package ratelimit

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLimiterBurstThenRefuses(t *testing.T) {
	l := New(Rule{Rate: 2, Burst: 3}, 0)
	now := time.Unix(1_000_000, 0)
	for i := range 3 {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("fourth request at once: ok %v wait %v, want refused for ≤ 0.5 s (2/s)", ok, wait)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Fatal("another key shares the first key's bucket")
	}
	// A refused request takes nothing: after the wait one is allowed again.
	if ok, _ := l.Allow("a", now.Add(wait)); !ok {
		t.Fatal("refused after waiting as long as told")
	}
	if RetryAfter(wait) != "1" || RetryAfter(2500*time.Millisecond) != "3" {
		t.Errorf("RetryAfter rounds to whole seconds, at least 1: %q %q", RetryAfter(wait), RetryAfter(2500*time.Millisecond))
	}
}

func TestOffAndNilAllowEverything(t *testing.T) {
	if New(Rule{}, 0) != nil {
		t.Fatal("a zero rule made a limiter")
	}
	var l *Limiter
	for range 1000 {
		if ok, _ := l.Allow("x", time.Now()); !ok {
			t.Fatal("a nil limiter refused")
		}
	}
}

func TestKeysAreBounded(t *testing.T) {
	l := New(Rule{Rate: 1, Burst: 1}, 2)
	now := time.Now()
	for _, k := range []string{"a", "b", "c"} {
		l.Allow(k, now)
	}
	if n := l.keys.Len(); n != 2 {
		t.Fatalf("%d keys kept, want the bound of 2", n)
	}
}

func TestRuleValidate(t *testing.T) {
	for r, want := range map[Rule]string{
		{Rate: -1, Burst: 1}: "limits.x.rate -1",
		{Rate: 1, Burst: -1}: "burst -1 must not be negative",
		{Rate: 1}:            "burst is 0, which refuses every request",
	} {
		if err := r.Validate("limits.x"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", r, err, want)
		}
	}
	for _, r := range []Rule{{}, {Rate: 5, Burst: 10}} {
		if err := r.Validate("limits.x"); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes("p", []string{"10.0.0.0/8", "192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePrefixes("limits.trustedProxies", []string{"not-an-ip"}); err == nil || !strings.Contains(err.Error(), `limits.trustedProxies: "not-an-ip"`) {
		t.Errorf("a bad proxy address: %v", err)
	}
	c := ClientIP{Trusted: trusted}
	for _, tc := range []struct {
		peer, xff, want string
	}{
		{"203.0.113.5:4000", "198.51.100.1", "203.0.113.5"},         // not from a proxy: the header is the client's own claim
		{"10.1.2.3:4000", "198.51.100.1", "198.51.100.1"},           // from a proxy
		{"10.1.2.3:4000", "198.51.100.1, 10.9.9.9", "198.51.100.1"}, // two proxies
		{"10.1.2.3:4000", "6.6.6.6, 198.51.100.1", "198.51.100.1"},  // a forged first hop is not believed
		{"10.1.2.3:4000", "", "10.1.2.3"},                           // proxy without the header
		{"192.168.1.1:80", "garbage", "192.168.1.1"},
		{"[::ffff:10.1.2.3]:4000", "2001:db8::1", "2001:db8::1"},
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := c.Of(r); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
	if got := (ClientIP{}).Of(&http.Request{RemoteAddr: "10.1.2.3:1", Header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}}); got != "10.1.2.3" {
		t.Errorf("with no trusted proxies the header counts: %s", got)
	}
}
