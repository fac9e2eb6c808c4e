#!/bin/bash
# The cost of TLS and tokens: two servers of one binary (BIN) on fresh copies
# of one store (STORE; made with the demo book of DEMO_SIZE relationships when
# absent), one plaintext without tokens, one with TLS and a token file,
# driven alternately by the same bench client ROUNDS times with the targets
# RPCS and any extra bench flags in BENCH_ARGS. Certificates are made here
# with openssl, in a temporary directory. See BENCHMARKS.md ("Security and
# limits"). Needs ports 50593-50594.
set -u
BIN=${BIN:-target/release/rapport}; STORE=${STORE:-/tmp/secure-ab-store}; DEMO_SIZE=${DEMO_SIZE:-20000}
RPCS=${RPCS:-score,score-batch}; ROUNDS=${ROUNDS:-3}; BENCH_ARGS=${BENCH_ARGS:-}
. "$(dirname "$0")/common.sh"
PKI=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=rapport bench CA" -keyout $PKI/ca.key -out $PKI/ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
  -keyout $PKI/server.key -out $PKI/server.csr 2>/dev/null
printf "subjectAltName=DNS:localhost\n" > $PKI/san.ext
openssl x509 -req -in $PKI/server.csr -CA $PKI/ca.pem -CAkey $PKI/ca.key -CAcreateserial \
  -days 2 -extfile $PKI/san.ext -out $PKI/server.pem 2>/dev/null
TOKEN=bench-token-$(openssl rand -hex 16)
echo "$TOKEN read bench" > $PKI/tokens
# A spawned server loads the demo book and trains into STORE once, then keeps it.
$BIN bench --spawn --keep-data $STORE --demo-size $DEMO_SIZE --rpcs echo --duration 0.5 --warmup 0 \
  --repetitions 1 > /tmp/secure-ab-make.log 2>&1
rm -rf /tmp/secure-ab-plain /tmp/secure-ab-secure
cp -r $STORE /tmp/secure-ab-plain; cp -r $STORE /tmp/secure-ab-secure
RUST_LOG=warn $BIN --data-dir /tmp/secure-ab-plain serve --listen 127.0.0.1:50593 > /tmp/secure-ab-plain.log 2>&1 & P_PLAIN=$!
RUST_LOG=warn $BIN --data-dir /tmp/secure-ab-secure serve --listen 127.0.0.1:50594 \
  --tls-cert $PKI/server.pem --tls-key $PKI/server.key --tokens $PKI/tokens > /tmp/secure-ab-secure.log 2>&1 & P_SECURE=$!
wait_port 50593; wait_port 50594; sleep 2
for round in $(seq 1 $ROUNDS); do
  for v in plain secure; do
    echo "== $v server, round $round"
    if [ $v = plain ]; then
      $BIN bench --target 127.0.0.1:50593 --server-pid $P_PLAIN --ids-from-demo $DEMO_SIZE --rpcs $RPCS \
        --duration 3 --warmup 1 --repetitions 1 $BENCH_ARGS 2>&1
    else
      $BIN bench --target localhost:50594 --server-pid $P_SECURE --ids-from-demo $DEMO_SIZE --rpcs $RPCS \
        --tls-ca $PKI/ca.pem --token $TOKEN --duration 3 --warmup 1 --repetitions 1 $BENCH_ARGS 2>&1
    fi | grep -E "^(echo|score|segment|recommend|record)"
  done
done
kill $P_PLAIN $P_SECURE; wait $P_PLAIN $P_SECURE 2>/dev/null
rm -rf $PKI /tmp/secure-ab-plain /tmp/secure-ab-secure
