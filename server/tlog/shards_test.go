package tlog

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Two shards on one mux: appends go to the shard whose start has passed
// last, whichever host they are posted to; checkpoints are served per
// shard by Host; the shard before is frozen.
func TestShards(t *testing.T) {
	first := openTestLog(t, "", nil, nil)
	second := openTestLog(t, "", nil, func(o *Options) { o.Origin = "shard2.test" })
	from := time.Now().Add(time.Hour)
	shards, err := NewShards(first.Log, Shard{Log: second.Log, From: from})
	if err != nil {
		t.Fatal(err)
	}
	if shards.At(from.Add(-time.Nanosecond)) != first.Log || shards.At(from) != second.Log || !shards.End(0).Equal(from) || !shards.End(1).IsZero() {
		t.Fatal("At/End do not switch at the second shard's start")
	}
	mux := http.NewServeMux()
	shards.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s := newEd25519Signer(t)
	appendVia := func(host string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v2/log/entries", strings.NewReader(string(createEntryJSON(t, s.request(t, []byte(host+time.Now().String()))))))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("append via %s: %s", host, resp.Status)
		}
	}
	size := func(host string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v2/checkpoint", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		lines := strings.SplitN(string(body), "\n", 3)
		return lines[0] + " " + lines[1]
	}

	appendVia("shard2.test") // before the start: the first log takes it
	if got := size("anything.test"); got != testOrigin+" 1" {
		t.Errorf("first log after one append: %q", got)
	}
	if got := size("shard2.test:443"); got != "shard2.test 0" {
		t.Errorf("second shard before its start: %q", got)
	}
	shards.now = func() time.Time { return from.Add(time.Second) }
	appendVia(testOrigin) // after: the second takes it, posted to the first's URL
	appendVia("shard2.test")
	if got := size(testOrigin); got != testOrigin+" 1" {
		t.Errorf("frozen first log: %q", got)
	}
	if got := size("shard2.test"); got != "shard2.test 2" {
		t.Errorf("second shard after its start: %q", got)
	}
	if err := shards.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNewShardsRefusesClashes(t *testing.T) {
	a := openTestLog(t, "", nil, nil)
	b := openTestLog(t, "", nil, nil)
	c := openTestLog(t, "", nil, func(o *Options) { o.Origin = "c.test" })
	d := openTestLog(t, "", nil, func(o *Options) { o.Origin = "d.test" })
	at := time.Now()
	for name, tc := range map[string]struct {
		more []Shard
		want string
	}{
		"same origin": {[]Shard{{Log: b.Log, From: at}}, "two log shards have the origin"},
		"no start":    {[]Shard{{Log: c.Log}}, "has no start"},
		"same start":  {[]Shard{{Log: c.Log, From: at}, {Log: d.Log, From: at}}, "start at the same time"},
	} {
		if _, err := NewShards(a.Log, tc.more...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
