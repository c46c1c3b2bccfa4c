#!/usr/bin/env bash
# Puts the signet binary the action runs in the step output "path", first of:
#   1. signet-binary input / $SIGNET_BINARY (self-hosted runners, tests);
#   2. the release pinned in RELEASE, downloaded once per runner and checked
#      against release.sha256, both committed with the action: a tag of the
#      action therefore names exact bytes, whatever the download server says;
#   3. go build of the action's own source (github.action_path is a checkout
#      of this repository at the action's ref), when Go is installed.
# See docs/github-action.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"

fail() {
	echo "::error title=signet binary::$*"
	exit 1
}
use() {
	echo "signet: using $1 ($2)"
	if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
		echo "path=$1" >>"$GITHUB_OUTPUT"
	else
		echo "path=$1"
	fi
	exit 0
}

bin="${SIGNET_BINARY_INPUT:-${SIGNET_BINARY:-}}"
if [[ -n "$bin" ]]; then
	[[ -f "$bin" && -x "$bin" ]] || fail "signet-binary (or SIGNET_BINARY) is '$bin', which is not an executable file; give the path of a signet binary, or leave it empty to use the release this action pins"
	use "$bin" "signet-binary override"
fi

case "${RUNNER_OS:-$(uname -s)}" in
Linux) os=linux ;;
macOS | Darwin) os=darwin ;;
*) os="" ;;
esac
case "${RUNNER_ARCH:-$(uname -m)}" in
X64 | x86_64 | amd64) arch=amd64 ;;
ARM64 | aarch64 | arm64) arch=arm64 ;;
*) arch="" ;;
esac

version="$(sed -e 's/#.*//' "$here/RELEASE" 2>/dev/null | tr -d ' \t\r\n' || true)"
if [[ -n "$version" && -n "$os" && -n "$arch" ]]; then
	asset="signet-${version}-${os}-${arch}"
	want="$(awk -v a="$asset" '$2 == a || $2 == "*" a { print $1 }' "$here/release.sha256")"
	[[ "$want" =~ ^[0-9a-f]{64}$ ]] || fail "this action pins signet $version but release.sha256 has no checksum for $asset; use a runner of a released platform, or set signet-binary"
	cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/signet/$version/$os-$arch"
	dest="$cache/signet"
	if [[ -x "$dest" ]] && [[ "$(sha256sum "$dest" | cut -d' ' -f1)" == "$want" ]]; then
		use "$dest" "release $version, cached, sha256 verified"
	fi
	base="${SIGNET_RELEASE_URL:-https://github.com/signet-dev/signet/releases/download}"
	mkdir -p "$cache"
	tmp="$(mktemp "$cache/.download-XXXXXX")"
	if curl -fsSL --retry 3 --max-time 120 -o "$tmp" "$base/$version/$asset"; then
		got="$(sha256sum "$tmp" | cut -d' ' -f1)"
		if [[ "$got" != "$want" ]]; then
			rm -f "$tmp"
			fail "checksum mismatch for $base/$version/$asset: downloaded sha256 $got, this action pins $want; the file was altered or the mirror serves another build, so it was not run"
		fi
		chmod 0755 "$tmp"
		mv -f "$tmp" "$dest"
		use "$dest" "release $version, sha256 verified"
	fi
	rm -f "$tmp"
	echo "::warning title=signet binary::could not download $base/$version/$asset; building signet from the action's source instead"
fi

if command -v go >/dev/null 2>&1 && [[ -f "$root/go.mod" ]]; then
	dest="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/signet-action-build/signet"
	echo "signet: building from $root with $(go version)"
	(cd "$root" && GOFLAGS=-buildvcs=false go build -trimpath -o "$dest" ./cmd/signet) ||
		fail "go build ./cmd/signet in $root failed (output above); set signet-binary to a prebuilt binary instead"
	use "$dest" "built from the action's source"
fi

fail "no signet binary: this action's ref pins no release${version:+ for $os-$arch} and Go is not installed to build it; use a released tag of the action (e.g. @v1), install Go (actions/setup-go) before this step, or set signet-binary"
