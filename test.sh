#!/usr/bin/env bash
# Runs signet's whole test suite: unit tests plus the integration tests that
# start the real server process on loopback. Tools the tests need are built
# from the Go module proxy into a cache outside the clone
# (${SIGNET_TOOLS_CACHE:-$HOME/.cache/signet-tools}).
set -euo pipefail
cd "$(dirname "$0")"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
go vet ./...
go test -count=1 -timeout 40m "$@" ./...
# The verifier's inputs, fuzzed briefly on top of their seeds (which the run
# above already replays); docs/verification.md has the longer run.
if [ $# -eq 0 ]; then
  for target in FuzzVerifyBundle FuzzTimestampToken FuzzCheckpoint FuzzLogEntryBody FuzzCertificate; do
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "${SIGNET_FUZZTIME:-10s}" -fuzzminimizetime 1s ./core/verify
  done
  # The other parsers of hostile input (package:target), more briefly each;
  # their seeds are in each package's testdata/fuzz.
  for spec in core/trust:FuzzParseRoot core/trust:FuzzParseSigningConfig core/token:FuzzParseClaims \
    server/tlog:FuzzCreateEntryRequest server/attest:FuzzSubmitRequest core/oci:FuzzListReferrers \
    core/sbom:FuzzRecognize core/bundle:FuzzParse; do
    go test -run '^$' -fuzz "^${spec#*:}\$" -fuzztime "${SIGNET_FUZZTIME:-5s}" -fuzzminimizetime 1s "./${spec%%:*}"
  done
fi
