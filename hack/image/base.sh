#!/usr/bin/env bash
# Makes the local stand-in for python:3.11-slim from Debian's packages, for machines that reach
# Debian's archive but no image registry (CI here). debootstrap bookworm (minbase) + python3.11,
# imported into podman's store as $VK_ECI_BASE_IMAGE. The root file system is cached as a tarball
# under ~/.cache/vk-eci/image, so later runs only re-import it (seconds).
set -euo pipefail

BASE=${VK_ECI_BASE_IMAGE:-localhost/vk-eci-base:bookworm-py3.11}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/vk-eci/image
MIRROR=${VK_ECI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the recipe below changes: the cached tarball is keyed by it.
RECIPE=1
TARBALL=$CACHE/base-bookworm-py3.11-r$RECIPE.tar

if podman image exists "$BASE"; then
  echo "base image $BASE present"
  exit 0
fi
mkdir -p "$CACHE"
if [ ! -f "$TARBALL" ]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm into $root (once per machine)"
  debootstrap --variant=minbase --include=python3.11,python3-pip,ca-certificates \
    bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
  # What the official image offers and the Dockerfile relies on: `python`, and pip allowed to
  # install into the image's own interpreter (PEP 668 guards a distribution's system Python).
  ln -sf python3 "$root/usr/bin/python"
  rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
  # This machine reaches PyPI through a TLS-inspecting proxy: trust the host's CA bundle, and
  # make pip use it rather than its own certifi copy.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
fi
podman import \
  --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV=LANG=C.UTF-8' \
  --change 'CMD=["python3"]' \
  "$TARBALL" "$BASE" >/dev/null
echo "base image $BASE imported from $TARBALL"
