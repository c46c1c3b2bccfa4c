package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/signet-dev/signet/core/oci"
	"github.com/signet-dev/signet/core/sign"
)

// Core errors name causes; the CLI adds the flag to change, and keeps the
// error's identity (and so its exit code).
func TestRemedies(t *testing.T) {
	cases := []struct {
		err  error
		flag string
	}{
		{sign.ErrNoServices, "--server"},
		{fmt.Errorf("sign: %w", sign.ErrNoCA), "--key"},
		{sign.ErrNoIdentityToken, "--identity-token"},
		{sign.ErrNoAttestationStore, "--server"},
		{&oci.InsecureRegistryError{Registry: "r.example"}, "--allow-insecure-registry"},
		{usageError{sign.ErrNoServices}, "--signing-config"},
	}
	for _, c := range cases {
		got := withRemedy(c.err)
		if !strings.Contains(got.Error(), c.flag) || !errors.Is(got, c.err) {
			t.Errorf("withRemedy(%v) = %v, want it to name %s and wrap the error", c.err, got, c.flag)
		}
		var ue usageError
		if errors.As(c.err, &ue) && !errors.As(got, &ue) {
			t.Errorf("withRemedy(%v) lost the usage error", c.err)
		}
	}
	plain := errors.New("something else")
	if withRemedy(plain) != plain {
		t.Error("an error without a remedy is changed")
	}
}
