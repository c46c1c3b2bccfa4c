package main

import (
	"strings"
	"testing"
)

// A mistyped command is a usage error (exit 2) that names the command
// meant, at the top level and in command groups; a word close to nothing
// gets no suggestion.
func TestMistypedCommandSuggests(t *testing.T) {
	for _, c := range []struct {
		args    []string
		unknown string
		suggest []string
	}{
		{[]string{"sing-blob", "app.tar.gz"}, `unknown command "sing-blob" for "signet"`, []string{"sign-blob"}},
		{[]string{"verfy-blob"}, `unknown command "verfy-blob" for "signet"`, []string{"verify-blob"}},
		{[]string{"log", "serch"}, `unknown command "serch" for "signet log"`, []string{"search"}},
		{[]string{"server", "fsk"}, `unknown command "fsk" for "signet server"`, []string{"fsck"}},
		{[]string{"quick"}, `unknown command "quick" for "signet"`, []string{"quickstart"}}, // a prefix
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "signet"`, nil},
	} {
		r := runSignet(t, nil, c.args...).want(t, exitUsage)
		if !strings.Contains(r.stderr, c.unknown) {
			t.Errorf("signet %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), c.unknown, r.stderr)
		}
		switch {
		case c.suggest == nil && strings.Contains(r.stderr, "Did you mean"):
			t.Errorf("signet %s suggested something:\n%s", strings.Join(c.args, " "), r.stderr)
		case c.suggest != nil && !strings.Contains(r.stderr, "Did you mean this?\n\t"+strings.Join(c.suggest, "\n\t")+"\n"):
			t.Errorf("signet %s: stderr does not suggest %v:\n%s", strings.Join(c.args, " "), c.suggest, r.stderr)
		}
		if !strings.Contains(r.stderr, "--help' for usage") {
			t.Errorf("signet %s: stderr does not point at --help:\n%s", strings.Join(c.args, " "), r.stderr)
		}
	}
}
