#!/usr/bin/env bash
# The server with file keys, then with every key in SoftHSM2: the same
# binary (/tmp/signet, go build -o /tmp/signet ./cmd/signet), the same
# machine, back to back. SoftHSM2 is where the tests unpack Debian's
# packages (internal/toolcache), or SOFTHSM_ROOT=/ for an installed one.
# Results: /tmp/hsmb/{files,hsm}-{ca,log,tsa}.json (docs/benchmarks.md).
set -euo pipefail
R=${SOFTHSM_ROOT:-$HOME/.cache/signet-tools/softhsm2-2.6.1-2.1/root}
M=$R/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so
B=/tmp/hsmb
rm -rf $B && mkdir -p $B/tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' $B > $B/softhsm2.conf
export SOFTHSM2_CONF=$B/softhsm2.conf SIGNET_PKCS11_MODULE=$M SIGNET_PKCS11_PIN=1234
$R/usr/bin/softhsm2-util --module $M --init-token --free --label bench --so-pin 5678 --pin 1234 >/dev/null
U() { echo "pkcs11:token=bench;object=$1"; }
/tmp/signet server keygen --algorithm ed25519 --key "$(U log)" >/dev/null
/tmp/signet server keygen --key "$(U ct)" >/dev/null
/tmp/signet ca init --out $B/ca --key "$(U ca)" --tsa-key "$(U tsa)" >/dev/null
cat > $B/hsm.yaml <<Y
keys:
  caKey: "$(U ca)"
  caChain: $B/ca/ca-chain.pem
  tsaKey: "$(U tsa)"
  tsaChain: $B/ca/tsa-chain.pem
  logKey: "$(U log)"
  ctLogKey: "$(U ct)"
Y
run() { # name config-args...
  local name=$1; shift
  rm -rf $B/data-$name
  /tmp/signet server --dev-oidc --data $B/data-$name --addr 127.0.0.1:18480 --log-level warn "$@" > $B/server-$name.log 2>&1 &
  local pid=$!
  for i in $(seq 100); do curl -sf http://127.0.0.1:18480/healthz >/dev/null && break; sleep 0.1; done
  /tmp/signet bench ca --server http://127.0.0.1:18480 --data $B/data-$name --clients 128 --duration 20s --warmup 3s --tokens 6000 -o json > $B/$name-ca.json
  /tmp/signet bench log --server http://127.0.0.1:18480 --data $B/data-$name --clients 16,256 --duration 15s --warmup 3s --entries 120000 -o json > $B/$name-log.json
  /tmp/signet bench tsa --server http://127.0.0.1:18480 --clients 16,128 --duration 10s --warmup 2s -o json > $B/$name-tsa.json
  kill $pid; wait $pid || true
}
run files
run hsm --config $B/hsm.yaml
