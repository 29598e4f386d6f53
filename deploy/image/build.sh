#!/usr/bin/env bash
# Build the bridge's container image from deploy/Dockerfile with podman, without Docker and without a container
# registry (`make image` runs this; so do the image tests, which makes it cheap when nothing changed):
#   1. the base image: Python 3.11 from Debian bookworm's packages (mmdebstrap), imported as
#      localhost/python-base:3.11-bookworm; the tarball is cached in .cache/image and made again only when
#      this recipe changes (delete .cache/image/base.tar to take Debian's latest updates);
#   2. the wheels of the bridge and its pinned dependencies, built on the host with the venv's pip, so the
#      build needs no network; made again only when constraints.txt, pyproject.toml, setup.py, README.md or
#      bridge/'s sources change (the bridge's own wheel compiles its hot modules with mypyc: about a minute);
#   3. `podman build` (its layer cache makes an unchanged build a no-op), then the image's size and digest.
# Environment: IMAGE (default localhost/idaas-siem-bridge:<pyproject version>), PIP (default .venv/bin/pip).
# The image id is written to .cache/image/image-id for the tests.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
podman=deploy/image/podman.sh
cache=.cache/image
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
image=${IMAGE:-localhost/idaas-siem-bridge:$version}
pip=${PIP:-.venv/bin/pip}
base_image=localhost/python-base:3.11-bookworm
key_label=org.idaas-siem-bridge.base-recipe
mkdir -p "$cache"

say() { echo "image: $*" >&2; }
key_of() { sha256sum | cut -c1-16; }

# --- 1. base image ----------------------------------------------------------------------------------------
# The host's apt sources (Debian and its security updates), docs and translations left out, /usr merged by
# mmdebstrap's hook instead of the usrmerge package (which would pull in perl).
sources=/etc/apt/sources.list.d/debian.sources
[[ -f $sources ]] || sources=/etc/apt/sources.list
mmdebstrap_args=(
  --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
  bookworm
)
base_key=$({ printf '%s\n' "${mmdebstrap_args[@]}"; cat "$sources"; } | key_of)
if [[ ! -f $cache/base.tar || "$(cat "$cache/base.key" 2>/dev/null)" != "$base_key" ]]; then
  say "making the base from Debian bookworm's packages (mmdebstrap, about a minute)"
  rm -f "$cache/base.tar" "$cache/base.key"
  if ! mmdebstrap --format=tar "${mmdebstrap_args[@]}" "$cache/base.tar.partial" "$sources" \
    >"$cache/mmdebstrap.log" 2>&1; then
    cat "$cache/mmdebstrap.log" >&2
    exit 1
  fi
  mv "$cache/base.tar.partial" "$cache/base.tar"
  echo "$base_key" >"$cache/base.key"
fi
if [[ "$("$podman" image inspect --format "{{index .Config.Labels \"$key_label\"}}" "$base_image" 2>/dev/null)" \
  != "$base_key" ]]; then
  say "importing $cache/base.tar as $base_image"
  "$podman" import --quiet --change "LABEL $key_label=$base_key" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' "$cache/base.tar" "$base_image" >/dev/null
fi

# --- 2. wheels --------------------------------------------------------------------------------------------
wheels_key=$(
  {
    sha256sum constraints.txt pyproject.toml setup.py README.md
    find bridge -type f ! -path '*/__pycache__/*' ! -name '*.so' -print0 | sort -z | xargs -0 sha256sum
  } | key_of
)
if [[ "$(cat "$cache/wheels/.key" 2>/dev/null)" != "$wheels_key" ]]; then
  say "building the wheels (pip wheel -c constraints.txt)"
  rm -rf "$cache/wheels"
  "$pip" wheel --quiet --disable-pip-version-check -c constraints.txt -w "$cache/wheels" .
  echo "$wheels_key" >"$cache/wheels/.key"
fi

# --- 3. the image -----------------------------------------------------------------------------------------
# Docker's image format: the OCI format has no HEALTHCHECK. INSTALL_FROM is given although it is not the
# default's: podman 4.3 resolves FROM install-${INSTALL_FROM} only for arguments given on the command line.
say "podman build -f deploy/Dockerfile -t $image"
if ! "$podman" build --quiet --format docker --layers -f deploy/Dockerfile \
  --build-arg PYTHON_IMAGE="$base_image" --build-arg INSTALL_FROM=wheels \
  --build-context wheels="$cache/wheels" -t "$image" . >"$cache/build.log" 2>&1; then
  cat "$cache/build.log" >&2
  exit 1
fi
read -r id digest size < <("$podman" image inspect --format '{{.Id}} {{.Digest}} {{.Size}}' "$image")
echo "$id" >"$cache/image-id"
echo "image $image: $((size / 1000000)) MB ($size bytes), digest $digest, id ${id:0:12}"
