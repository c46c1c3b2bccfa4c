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
