#!/usr/bin/env bash
# Install what `make image` and tests/e2e/test_image.py need from Debian's packages, once: podman, runc (the
# runtime that works here; see deploy/image/containers.conf) and mmdebstrap (makes the base image).
# A second run with the three present is instant. Needs root (apt-get), as on the project's machines and CI.
set -euo pipefail

packages=(podman runc mmdebstrap)
missing=()
for package in "${packages[@]}"; do
  command -v "$package" >/dev/null || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-podman: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet, or stale ones.
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
