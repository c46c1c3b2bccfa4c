// Command release holds the steps of the release workflow
// (.github/workflows/release.yml) that must give the same result on a
// laptop as on the runner, so they can be run and tested locally:
//
//	go run ./internal/release build -version v1.2.3 -out dist
//	go run ./internal/release pin -version v1.2.3 -sums dist/SHA256SUMS -action-dir action
//	go run ./internal/release publish-dir -version v1.2.3 -from dist -to /srv/signet-releases
//
// build cross-compiles the signet binary reproducibly and writes SHA256SUMS;
// pin writes the action's release pin (action/RELEASE, action/release.sha256)
// that action/install-signet.sh reads; publish-dir copies the assets into a
// mirror laid out as SIGNET_RELEASE_URL expects (<dir>/<version>/<asset>).
// Signing is not here: the workflow signs with the action itself.
// docs/github-action.md ("Releasing") describes the whole release.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ error }

const usage = `usage: go run ./internal/release COMMAND [flags]

commands:
  build        build signet-VERSION-OS-ARCH for every platform and SHA256SUMS
  pin          write action/RELEASE and action/release.sha256 from SHA256SUMS
  publish-dir  copy the release assets to DIR/VERSION/ (a download mirror)

Run a command with -h for its flags.`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "build":
		err = buildCmd(args[1:], stdout, stderr)
	case "pin":
		err = pinCmd(args[1:], stdout, stderr)
	case "publish-dir":
		err = publishDirCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "release: unknown command %q\n\n%s\n", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "release %s: %v\n", args[0], err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// newFlags is a flag set that reports to stderr and returns errors rather
// than exiting, so run decides the exit status.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("release "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses the flags and refuses positional arguments, which every
// command would otherwise silently ignore.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q: every input is a flag (see -h)", fs.Arg(0))}
	}
	return nil
}
