#!/usr/bin/env bash
# The server with file keys, then with its CA, TSA, CT log and TUF keys in
# an AWS KMS emulator on loopback: the same binary ($SIGNET, default
# /tmp/signet: go build -o /tmp/signet ./cmd/signet), the same machine,
# back to back. The emulator is local-kms as the tests build it (internal/toolcache.LocalKMS,
# run once by `go test -run TestAWSKMS ./core/keyref/`), serving TLS under a
# throwaway CA as internal/kmstest does. The log's checkpoint key is
# Ed25519, which no KMS offers through sigstore/sigstore: a file outside
# the data directory. Results: /tmp/kmsb/{files,kms}-{ca,log,tsa}.json
# (docs/benchmarks.md).
set -euo pipefail
S=${SIGNET:-/tmp/signet}
KMS=${LOCAL_KMS:-$(ls -d "${SIGNET_TOOLS_CACHE:-$HOME/.cache/signet-tools}"/local-kms-*/local-kms | tail -1)}
B=/tmp/kmsb
rm -rf $B && mkdir -p $B
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=kms-bench-ca -days 1 \
  -keyout $B/ca.key -out $B/ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=local-kms \
  -keyout $B/tls.key -out $B/tls.csr 2>/dev/null
openssl x509 -req -in $B/tls.csr -CA $B/ca.pem -CAkey $B/ca.key -CAcreateserial -days 1 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') -out $B/tls.pem 2>/dev/null
"$KMS" -addr 127.0.0.1:0 -data $B/kmsdb -tls-cert $B/tls.pem -tls-key $B/tls.key -addr-file $B/kms-addr > $B/local-kms.log 2>&1 &
kms_pid=$!
trap 'kill $kms_pid 2>/dev/null || true' EXIT
for i in $(seq 100); do [ -s $B/kms-addr ] && break; sleep 0.1; done
export AWS_REGION=eu-west-2 AWS_CA_BUNDLE=$B/ca.pem AWS_EC2_METADATA_DISABLED=true \
  AWS_ACCESS_KEY_ID=AKIAKMSBENCH AWS_SECRET_ACCESS_KEY=bench \
  AWS_CONFIG_FILE=$B/no-aws-config AWS_SHARED_CREDENTIALS_FILE=$B/no-aws-credentials
U() { echo "awskms://$(cat $B/kms-addr)/alias/$1"; }
$S server keygen --algorithm ed25519 --key $B/log.key >/dev/null
$S server keygen --key "$(U ct)" >/dev/null
$S server keygen --key "$(U tuf)" >/dev/null
$S ca init --out $B/ca-out --root-key $B/root.key --key "$(U ca)" --tsa-key "$(U tsa)" >/dev/null
cat > $B/kms.yaml <<Y
keys:
  caKey: "$(U ca)"
  caChain: $B/ca-out/ca-chain.pem
  tsaKey: "$(U tsa)"
  tsaChain: $B/ca-out/tsa-chain.pem
  logKey: $B/log.key
  ctLogKey: "$(U ct)"
tuf:
  key: "$(U tuf)"
Y
run() { # name config-args...
  local name=$1; shift
  rm -rf $B/data-$name
  $S server --dev-oidc --data $B/data-$name --addr 127.0.0.1:18481 --log-level warn "$@" > $B/server-$name.log 2>&1 &
  local pid=$!
  for i in $(seq 100); do curl -sf http://127.0.0.1:18481/healthz >/dev/null && break; sleep 0.1; done
  $S bench ca --server http://127.0.0.1:18481 --data $B/data-$name --clients 128 --duration 20s --warmup 3s --tokens 6000 -o json > $B/$name-ca.json
  $S bench log --server http://127.0.0.1:18481 --data $B/data-$name --clients 16,256 --duration 15s --warmup 3s --entries 120000 -o json > $B/$name-log.json
  $S bench tsa --server http://127.0.0.1:18481 --clients 16,128 --duration 10s --warmup 2s -o json > $B/$name-tsa.json
  kill $pid; wait $pid || true
}
run files
run kms --config $B/kms.yaml
echo "KMS signatures made: $(grep -c 'message signed' $B/local-kms.log)"
