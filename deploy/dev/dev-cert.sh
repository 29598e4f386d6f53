#!/usr/bin/env bash
# A self-signed certificate for 127.0.0.1/localhost, for `make run` and the e2e tests. Never for production.
set -euo pipefail
out=${1:?usage: dev-cert.sh OUTPUT_DIR}
mkdir -p "$out"
if [[ -s "$out/dev-cert.pem" && -s "$out/dev-key.pem" ]]; then
  exit 0
fi
openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$out/dev-key.pem" -out "$out/dev-cert.pem" 2>/dev/null
chmod 600 "$out/dev-key.pem"
echo "dev certificate: $out/dev-cert.pem"
