#!/usr/bin/env bash
# Builds the repository's Dockerfile, unchanged, with buildah on the local Debian base
# (hack/image/base.sh). Usage: hack/image/build.sh [TAG]   (default localhost/vk-eci:dev)
# Layers are cached, so a rebuild with unchanged sources takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."

TAG=${1:-localhost/vk-eci:dev}
BASE=${VK_ECI_BASE_IMAGE:-localhost/vk-eci-base:bookworm-py3.11}
export VK_ECI_BASE_IMAGE=$BASE
bash hack/image/base.sh
# chroot isolation: RUN steps need no OCI runtime (crun refuses this machine's hybrid cgroups);
# host network: apt and pip reach their archives as the host does. The soft nofile limit is
# lowered rather than raised: raising needs CAP_SYS_RESOURCE, which this sandbox lacks.
start=$(date +%s)
buildah bud --layers --isolation chroot --network host --ulimit nofile=4096:4096 \
  --build-arg "PYTHON_IMAGE=$BASE" -t "$TAG" . >&2
echo "built $TAG in $(( $(date +%s) - start ))s; size $(podman image inspect "$TAG" --format '{{.Size}}') bytes" >&2
