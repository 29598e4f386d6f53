#!/usr/bin/env bash
# podman with the project's containers.conf: `make image`, the image tests and people all run it this way.
#   deploy/image/podman.sh images
set -euo pipefail
CONTAINERS_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf" exec podman "$@"
