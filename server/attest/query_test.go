package attest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const spdx = "https://spdx.dev/Document"

type page struct {
	Attestations  []*Record `json:"attestations"`
	NextPageToken string    `json:"nextPageToken"`
}

func (e *env) query(t *testing.T, params url.Values) page {
	t.Helper()
	resp := e.get("/api/v2/attestations?" + params.Encode())
	if resp.status != http.StatusOK {
		t.Fatalf("query %v: %d %s", params, resp.status, resp.body)
	}
	var p page
	if err := json.Unmarshal(resp.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func ids(p page) []string {
	out := []string{}
	for _, r := range p.Attestations {
		out = append(out, r.ID)
	}
	return out
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func TestQueries(t *testing.T) { testQueries(t, newEnv) }

func testQueries(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	const issuerA, issuerB = "https://accounts.example.com", "https://other-idp.example.com"
	alice := e.ca.issue(t, "alice@example.com", issuerA)
	bob := e.ca.issue(t, "bob@example.com", issuerA)
	aliceB := e.ca.issue(t, "alice@example.com", issuerB)
	d1, d2, dp := hexDigest("one"), hexDigest("two"), hexDigest("paged")

	submit := func(s *signer, predicateType string, digests ...string) string {
		t.Helper()
		resp := e.post(map[string]any{"envelope": s.sign(t, InTotoPayloadType, statement(predicateType, digests...)), "verifier": s.verifierJSON(t, "PKIX_ECDSA_P256_SHA_256")})
		if resp.status != http.StatusCreated {
			t.Fatalf("submit: %d %s", resp.status, resp.body)
		}
		return resp.json(t)["attestationId"].(string)
	}
	a1 := submit(alice, slsa, d1)
	a2 := submit(alice, spdx, d1, d2)
	a3 := submit(alice, slsa, d2)
	a4 := submit(bob, slsa, d1)
	a5 := submit(aliceB, slsa, d1)
	var paged []string
	for range 7 {
		paged = append(paged, submit(alice, slsa, dp))
	}

	check := func(t *testing.T) {
		for _, c := range []struct {
			params url.Values
			want   []string
		}{
			{url.Values{"digest": {"sha256:" + d1}}, []string{a5, a4, a2, a1}},
			{url.Values{"digest": {"sha256:" + strings.ToUpper(d1)}}, []string{a5, a4, a2, a1}},
			{url.Values{"digest": {"sha256:" + d2}}, []string{a3, a2}},
			{url.Values{"digest": {"sha256:" + d1}, "predicateType": {spdx}}, []string{a2}},
			{url.Values{"predicateType": {spdx}}, []string{a2}},
			{url.Values{"identity": {"bob@example.com"}}, []string{a4}},
			{url.Values{"identity": {"alice@example.com"}, "issuer": {issuerB}}, []string{a5}},
			{url.Values{"identity": {"alice@example.com"}, "issuer": {issuerA}, "digest": {"sha256:" + d2}}, []string{a3, a2}},
			{url.Values{"digest": {"sha256:" + d1}, "identity": {"bob@example.com"}}, []string{a4}},
			{url.Values{"digest": {"sha256:" + d1}, "issuer": {issuerB}}, []string{a5}},
			{url.Values{"predicateType": {slsa}, "identity": {"alice@example.com"}, "pageSize": {"500"}}, append(reversed(paged), a5, a3, a1)},
			{url.Values{"digest": {"sha256:" + hexDigest("nothing")}}, []string{}},
			{url.Values{"digest": {"sha512:" + hexDigest("one") + hexDigest("one")}}, []string{}},
			{url.Values{"predicateType": {"https://example.com/unknown"}}, []string{}},
		} {
			p := e.query(t, c.params)
			if got := ids(p); !reflect.DeepEqual(got, c.want) {
				t.Errorf("%v: got %v, want %v", c.params, got, c.want)
			}
			if p.NextPageToken != "" {
				t.Errorf("%v: a complete answer has nextPageToken %q", c.params, p.NextPageToken)
			}
		}

		// A cursor beyond every record starts at the newest.
		if got := ids(e.query(t, url.Values{"digest": {"sha256:" + d1}, "pageToken": {encodePageToken(math.MaxUint64)}})); !reflect.DeepEqual(got, []string{a5, a4, a2, a1}) {
			t.Errorf("from the largest cursor: %v", got)
		}

		// Records come back whole.
		rec := e.query(t, url.Values{"digest": {"sha256:" + d2}, "predicateType": {spdx}}).Attestations[0]
		if rec.Identity != "alice@example.com" || rec.Issuer != issuerA || len(rec.Subjects) != 2 || rec.Entry.GetInclusionProof() == nil ||
			len(rec.Envelope.GetSignatures()) != 1 || rec.Verifier.GetX509Certificate() == nil || rec.StoredTime.IsZero() {
			t.Errorf("record %+v", rec)
		}

		// Pagination walks all matches once, newest first.
		var got []string
		params := url.Values{"digest": {"sha256:" + dp}, "pageSize": {"3"}}
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatal("pagination does not end")
			}
			p := e.query(t, params)
			if len(p.Attestations) > 3 {
				t.Fatalf("page of %d", len(p.Attestations))
			}
			got = append(got, ids(p)...)
			if p.NextPageToken == "" {
				break
			}
			params.Set("pageToken", p.NextPageToken)
		}
		if !reflect.DeepEqual(got, reversed(paged)) {
			t.Errorf("paged: got %v, want %v", got, paged)
		}
		// A page that ends exactly at the last match has no next token.
		if p := e.query(t, url.Values{"digest": {"sha256:" + dp}, "pageSize": {"7"}}); len(p.Attestations) != 7 || p.NextPageToken != "" {
			t.Errorf("exact page: %d, token %q", len(p.Attestations), p.NextPageToken)
		}
		// Filters apply before the page is cut: bob's one record among
		// alice's is found with a page of 1 and nothing after it.
		if p := e.query(t, url.Values{"digest": {"sha256:" + d1}, "identity": {"bob@example.com"}, "pageSize": {"1"}}); !reflect.DeepEqual(ids(p), []string{a4}) || p.NextPageToken != "" {
			t.Errorf("filtered page: %v token %q", ids(p), p.NextPageToken)
		}
		p1 := e.query(t, url.Values{"digest": {"sha256:" + d1}, "issuer": {issuerA}, "pageSize": {"2"}})
		p2 := e.query(t, url.Values{"digest": {"sha256:" + d1}, "issuer": {issuerA}, "pageSize": {"2"}, "pageToken": {p1.NextPageToken}})
		if !reflect.DeepEqual(ids(p1), []string{a4, a2}) || !reflect.DeepEqual(ids(p2), []string{a1}) || p2.NextPageToken != "" {
			t.Errorf("filtered pages: %v then %v (token %q)", ids(p1), ids(p2), p2.NextPageToken)
		}

		if got := e.get("/api/v2/attestations/" + a3); got.status != http.StatusOK {
			t.Errorf("get %s: %d", a3, got.status)
		}
	}
	check(t)
	e.reopen()
	t.Run("after reopening the database", check)
	if v := metricValue(t, e.store.metrics.records); v != 12 {
		t.Errorf("stored gauge after reopen %v", v)
	}
}

func TestQueryRefusals(t *testing.T) { testQueryRefusals(t, newEnv) }

func testQueryRefusals(t *testing.T, newEnv envMaker) {
	e := newEnv(t)
	for _, c := range []struct {
		path, want string
		status     int
	}{
		{"/api/v2/attestations", "give at least one of digest", 400},
		{"/api/v2/attestations?issuer=https://accounts.example.com", "give at least one of digest", 400},
		{"/api/v2/attestations?digest=abc", `digest "abc" is not <algorithm>:<value>`, 400},
		{"/api/v2/attestations?digest=sha256:", "is not <algorithm>:<value>", 400},
		{"/api/v2/attestations?digest=sha256:zz", "a sha256 value is 64 hex characters", 400},
		{"/api/v2/attestations?digest=sha256:abcd", "a sha256 value is 64 hex characters", 400},
		{"/api/v2/attestations?subject=sha256:abcd", `unknown query parameter "subject"`, 400},
		{"/api/v2/attestations?identity=a&identity=b", `"identity" is given 2 times`, 400},
		{"/api/v2/attestations?identity=a&pageSize=0", "pageSize \"0\" must be a number from 1 to 500", 400},
		{"/api/v2/attestations?identity=a&pageSize=501", "from 1 to 500", 400},
		{"/api/v2/attestations?identity=a&pageSize=ten", "from 1 to 500", 400},
		{"/api/v2/attestations?identity=a&pageToken=!!", "was not returned by this server", 400},
		{"/api/v2/attestations?identity=a&pageToken=AAAA", "was not returned by this server", 400},
		{"/api/v2/attestations?identity=a&pageToken=AAAAAAAAAAE", "was not returned by this server", 400}, // an oldest-first token of older servers
		{"/api/v2/attestations/xyz", `attestation id "xyz" is not 64 lower-case hex`, 400},
		{"/api/v2/attestations/" + strings.ToUpper(hexDigest("x")), "is not 64 lower-case hex", 400},
		{"/api/v2/attestations/" + hexDigest("x"), fmt.Sprintf("no attestation %s is stored here", hexDigest("x")), 404},
	} {
		resp := e.get(c.path)
		if resp.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.path, resp.status, c.status, resp.body)
			continue
		}
		if msg, _ := resp.json(t)["message"].(string); !strings.Contains(msg, c.want) {
			t.Errorf("%s: message %q does not contain %q", c.path, msg, c.want)
		}
	}
}
