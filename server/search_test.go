package server_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/signet-dev/signet/server/servertest"
)

// `signet log search` and the API it asks answer newest first, as the
// docs and the command's help say: with --limit the newest attestations
// are the ones kept, and paging (pages of 2 here, through the API) keeps
// that order.
func TestLogSearchNewestFirst(t *testing.T) {
	p := servertest.Start(t, t.TempDir(), "--dev-oidc")
	subject := strings.Repeat("5e", 32)
	var stored []string
	for i := range 5 {
		stored = append(stored, storeAttestationOf(t, p, subject, []byte(fmt.Appendf(nil, `{"n":%d}`, i))).AttestationID)
	}
	newest := slices.Clone(stored)
	slices.Reverse(newest)

	search := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command(servertest.Binary(t), append([]string{"log", "search", "--server", p.URL, "--digest", "sha256:" + subject, "-o", "json"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("signet log search %v: %v\n%s", args, err, out)
		}
		var res struct {
			Attestations []struct {
				ID string `json:"id"`
			} `json:"attestations"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var ids []string
		for _, a := range res.Attestations {
			ids = append(ids, a.ID)
		}
		return ids
	}
	if got := search(); !slices.Equal(got, newest) {
		t.Errorf("log search: %v, want newest first %v", got, newest)
	}
	if got := search("--limit", "2"); !slices.Equal(got, newest[:2]) {
		t.Errorf("log search --limit 2: %v, want the two newest %v", got, newest[:2])
	}

	var paged []string
	path := "/api/v2/attestations?pageSize=2&digest=sha256:" + subject
	for token := ""; ; {
		page, _ := queryPage(t, p, path+token)
		paged = append(paged, page.IDs...)
		if page.Next == "" || len(paged) > len(stored) {
			break
		}
		// An attestation stored while paging does not shift the pages.
		if len(paged) == 2 {
			storeAttestationOf(t, p, subject, []byte(`{"late":true}`))
		}
		token = "&pageToken=" + page.Next
	}
	if !slices.Equal(paged, newest) {
		t.Errorf("paged API answer: %v, want newest first %v", paged, newest)
	}
}
