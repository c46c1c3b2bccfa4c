// Package ratelimit keeps one client from taking a service's whole
// capacity: a token bucket per key (a client IP, an identity), from
// golang.org/x/time/rate, with the keys held in a bounded LRU so that many
// distinct clients cost bounded memory.
package ratelimit

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Rule is a sustained rate per second and the burst above it. A zero Rate
// means no limit.
type Rule struct {
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

// Off reports whether the rule limits nothing.
func (r Rule) Off() bool { return r.Rate <= 0 }

// Validate says what is wrong with a rule, naming it by where.
func (r Rule) Validate(where string) error {
	switch {
	case r.Rate < 0 || math.IsNaN(r.Rate) || math.IsInf(r.Rate, 0):
		return fmt.Errorf("%s.rate %v: give requests per second (0 for no limit)", where, r.Rate)
	case r.Burst < 0:
		return fmt.Errorf("%s.burst %d must not be negative", where, r.Burst)
	case r.Rate > 0 && r.Burst == 0:
		return fmt.Errorf("%s.burst is 0, which refuses every request; give at least 1 (the requests allowed at once)", where)
	}
	return nil
}

// DefaultMaxKeys bounds the clients tracked at once per limiter. A client
// evicted while idle comes back with a full bucket, which only errs in
// its favour.
const DefaultMaxKeys = 100_000

// Limiter applies one Rule per key.
type Limiter struct {
	rule Rule
	mu   sync.Mutex
	keys *lru.Cache[string, *rate.Limiter]
}

// New returns a limiter, or nil for a rule that is off (a nil *Limiter
// allows everything).
func New(rule Rule, maxKeys int) *Limiter {
	if rule.Off() {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	c, err := lru.New[string, *rate.Limiter](maxKeys)
	if err != nil {
		panic(err) // only for a non-positive size
	}
	return &Limiter{rule: rule, keys: c}
}

// Allow takes one request for key; when the bucket is empty it returns
// false and how long until a request would be allowed.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	lim, ok := l.keys.Get(key)
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.rule.Rate), l.rule.Burst)
		l.keys.Add(key, lim)
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// RetryAfter is a Retry-After header value for a wait: whole seconds,
// rounded up, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// ClientIP is the address a request came from: the TCP peer, or, when the
// peer is one of the trusted proxies, the last address in
// X-Forwarded-For that is not a trusted proxy (what the proxy chain saw).
type ClientIP struct {
	Trusted []netip.Prefix
}

// ParsePrefixes reads CIDRs (or single addresses) for ClientIP.Trusted.
func ParsePrefixes(where string, ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not an IP address or CIDR", where, s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an IP address or CIDR", where, s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (c ClientIP) trusted(a netip.Addr) bool {
	for _, p := range c.Trusted {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// Of returns the client address of r.
func (c ClientIP) Of(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(c.Trusted) == 0 || !c.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a proxy wrote something that is not an address: stop trusting the header
		}
		if !c.trusted(a) {
			return a.Unmap().String()
		}
	}
	return host
}
