#!/usr/bin/env bash
# A self-signed certificate for 127.0.0.1/localhost, for `make run`, the e2e tests and the benchmark. Never
# for production. The key is ECDSA P-256: the server signs once per full TLS handshake, and that signature
# costs a small fraction of an RSA-2048 one (docs/operations.md, "TLS"). DEV_CERT_KEY=rsa makes an RSA-2048
# key instead, to measure what a certificate with one costs (docs/benchmarks.md).
set -euo pipefail
out=${1:?usage: dev-cert.sh OUTPUT_DIR}
# `algorithm`: how `openssl x509 -text` names the kind's public key.
case ${DEV_CERT_KEY:-ec} in
  ec) key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) algorithm=id-ecPublicKey ;;
  rsa) key=(-newkey rsa:2048) algorithm=rsaEncryption ;;
  *) echo "DEV_CERT_KEY=${DEV_CERT_KEY}: use ec (the default) or rsa" >&2; exit 2 ;;
esac
mkdir -p "$out"
# A certificate already there is kept (a running bridge and the clients trusting it go on working) only if
# it is of the kind asked for: an older checkout's RSA one, or one made for a measurement, is replaced
# rather than silently standing in for the other kind.
if [[ -s "$out/dev-cert.pem" && -s "$out/dev-key.pem" &&
  $(openssl x509 -in "$out/dev-cert.pem" -noout -text 2>/dev/null) == *"Public Key Algorithm: $algorithm"* ]]; then
  exit 0
fi
openssl req -x509 "${key[@]}" -nodes -days 825 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$out/dev-key.pem" -out "$out/dev-cert.pem" 2>/dev/null
chmod 600 "$out/dev-key.pem"
echo "dev certificate: $out/dev-cert.pem"
