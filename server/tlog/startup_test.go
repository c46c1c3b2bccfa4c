package tlog

import "testing"

func TestIsTemporary(t *testing.T) {
	known := map[string]bool{"checkpoint": true, "treeState": true, "version": true}
	for _, c := range []struct {
		parent, name string
		want         bool
	}{
		{"log", "checkpoint", false},
		{"log", "checkpoint1804289383", true},
		{".state", "treeState", false},
		{".state", "treeState.lock", false},
		{".state", "treeState42", true},
		{".state", "version", false},
		{"0", "000", false},
		{"0", "x001", false},
		{"0", "000.p", false},
		{"0", "0001804289383", true},
		{"001.p", "44", false},
		{"001.p", "255", false},
		{"001.p", "441804289383", true},
		{"001.p", "256", true},
		{"001.p", "044", true},
		{"entries", "001", false},
	} {
		if got := isTemporary(known, c.parent, c.name); got != c.want {
			t.Errorf("isTemporary(%q, %q) = %v, want %v", c.parent, c.name, got, c.want)
		}
	}
}
