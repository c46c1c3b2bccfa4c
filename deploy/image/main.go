// Command image builds the signet server's container image without a
// Docker daemon: it compiles cmd/signet itself (static, reproducible),
// lays it out FROM scratch with a non-root user, CA certificates and an
// empty /data volume, and writes an OCI index of one image per platform.
// Two builds of the same tree with the same SOURCE_DATE_EPOCH give the
// same digest. See docs/deploy.md.
//
//	go run ./deploy/image --push registry.example.com/signet/server:v1.2.3 --version v1.2.3
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var u usageError
	switch {
	case err == nil:
	case errors.Is(err, pflag.ErrHelp):
	case errors.As(err, &u):
		fmt.Fprintf(os.Stderr, "image: %v (see --help)\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad flag: exit status 2, as the signet CLI does.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// run parses args, builds the index, writes it where asked and prints its
// digest on stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("image", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o         options
		platforms string
		epoch     string
	)
	fs.StringVar(&platforms, "platform", "linux/amd64,linux/arm64", "comma-separated os/arch list; each becomes one image of the index")
	fs.StringVar(&o.version, "version", "devel", "version stamped into the binary (signet version, signet_build_info) and the org.opencontainers.image.version label")
	fs.StringVar(&o.revision, "revision", "", "commit for the org.opencontainers.image.revision label (default: the output of git rev-parse HEAD in the module, omitted when that fails)")
	fs.StringVar(&o.source, "source", defaultSource, "org.opencontainers.image.source label")
	fs.StringVar(&epoch, "source-date-epoch", "", "Unix time of every timestamp in the image and of the org.opencontainers.image.created label (default: $SOURCE_DATE_EPOCH, else the commit time of HEAD)")
	fs.StringVar(&o.caFile, "ca-certificates", "", "PEM bundle to install as /etc/ssl/certs/ca-certificates.crt (default: the Mozilla bundle of Debian's ca-certificates "+caCertificates.Version+", unpacked into the tools cache)")
	fs.StringVar(&o.moduleDir, "module", "", "the signet module to build (default: the module of the current directory)")
	fs.StringVar(&o.push, "push", "", "push the index to this reference (REPO:TAG or REPO); credentials from the Docker config, as the signet CLI finds them")
	fs.BoolVar(&o.insecure, "insecure", false, "allow plain HTTP to the --push registry (loopback and RFC 1918 addresses fall back to it anyway)")
	fs.StringVar(&o.layout, "layout", "", "also write the index into this OCI image layout directory (created if missing, appended to otherwise)")
	fs.StringVarP(&o.output, "output", "o", "text", "output: text (the index digest; REPO@DIGEST when pushed) or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: go run ./deploy/image [flags]

Builds the signet server image (FROM scratch, user 65532, entrypoint
"signet server", data volume /data) for each --platform from this module's
cmd/signet (CGO_ENABLED=0, -trimpath: no PKCS#11, KMS keys work) and prints
the OCI index digest. Nothing is written unless --push or --layout is given.

Flags:
%s`, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q: every input is a flag", fs.Args())}
	}
	var err error
	if o.platforms, err = parsePlatforms(platforms); err != nil {
		return usageError{err}
	}
	if o.output != "text" && o.output != "json" {
		return usageError{fmt.Errorf("--output %q: use text or json", o.output)}
	}
	if o.moduleDir, err = moduleDir(ctx, o.moduleDir); err != nil {
		return err
	}
	if epoch == "" {
		epoch = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if o.created, err = sourceDate(ctx, epoch, o.moduleDir); err != nil {
		return err
	}
	if !fs.Changed("revision") {
		o.revision = gitRevision(ctx, o.moduleDir)
	}
	res, err := build(ctx, o, stderr)
	if err != nil {
		return err
	}
	return printResult(stdout, o.output, res)
}
