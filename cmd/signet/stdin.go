package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// stdinName is how FILE and --predicate name standard input, as in cosign.
const stdinName = "-"

// spoolStdin copies standard input to a temporary file when name is "-",
// so that it can be read more than once (digest, signature, verification);
// it returns the path to read and a cleanup. Other names pass through.
func spoolStdin(cmd *cobra.Command, name, what string) (string, func(), error) {
	if name != stdinName {
		return name, func() {}, nil
	}
	f, err := os.CreateTemp("", "signet-stdin-*")
	if err != nil {
		return "", nil, fmt.Errorf("%s -: buffering standard input: %w", what, err)
	}
	cleanup := func() { f.Close(); os.Remove(f.Name()) }
	if _, err := io.Copy(f, cmd.InOrStdin()); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("%s -: reading standard input: %w", what, err)
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

// errStdinBundle: content from standard input has no file a bundle could
// sit next to.
var errStdinBundle = errors.New("FILE - (standard input) needs --bundle: there is no file to put the bundle next to")
