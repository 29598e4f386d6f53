#!/usr/bin/env bash
# A self-signed certificate for 127.0.0.1/localhost, for `make run`, the e2e tests and the benchmark. Never
# for production. The key is ECDSA P-256: the server signs once per full TLS handshake, and that signature
# costs a small fraction of an RSA-2048 one (docs/operations.md, "TLS"). DEV_CERT_KEY=rsa makes an RSA-2048
# key instead, to measure what a certificate with one costs (docs/benchmarks.md).
set -euo pipefail
out=${1:?usage: dev-cert.sh OUTPUT_DIR}
case ${DEV_CERT_KEY:-ec} in
  ec) key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
  rsa) key=(-newkey rsa:2048) ;;
  *) echo "DEV_CERT_KEY=${DEV_CERT_KEY}: use ec (the default) or rsa" >&2; exit 2 ;;
esac
mkdir -p "$out"
if [[ -s "$out/dev-cert.pem" && -s "$out/dev-key.pem" ]]; then
  exit 0
fi
openssl req -x509 "${key[@]}" -nodes -days 825 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$out/dev-key.pem" -out "$out/dev-cert.pem" 2>/dev/null
chmod 600 "$out/dev-key.pem"
echo "dev certificate: $out/dev-cert.pem"
