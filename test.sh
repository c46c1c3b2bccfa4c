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
# Every parser of hostile input, fuzzed briefly on top of its seeds (which
# the run above already replays); docs/verification.md has the longer run.
# Budgets are counts of executions (about 5-10 s each here), not durations:
# Go 1.26's coordinator can report a spurious "context deadline exceeded"
# when a -fuzztime duration ends mid-input (golang/go#75804, fixed in 1.27),
# and a count has no deadline to race. SIGNET_FUZZTIME=30s (or 100000x)
# overrides every budget.
if [ $# -eq 0 ]; then
  for spec in core/verify:FuzzVerifyBundle:700 core/verify:FuzzTimestampToken:10000 \
    core/verify:FuzzCheckpoint:15000 core/verify:FuzzLogEntryBody:2500 core/verify:FuzzCertificate:1500 \
    core/trust:FuzzParseRoot:600 core/trust:FuzzParseSigningConfig:10000 core/token:FuzzParseClaims:1200 \
    server/tlog:FuzzCreateEntryRequest:1000 server/attest:FuzzSubmitRequest:500 core/oci:FuzzListReferrers:600 \
    core/sbom:FuzzRecognize:2500 core/bundle:FuzzParse:1000; do
    pkg=${spec%%:*} rest=${spec#*:}
    target=${rest%%:*} count=${rest#*:}
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "${SIGNET_FUZZTIME:-${count}x}" -fuzzminimizetime 1s "./${pkg}"
  done
fi
