#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs every test.
# Idempotent: a second run reuses the installed packages and the built control plane.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> Python packages"
python3 -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'

echo "==> Debian packages (prometheus, promtool; buildah, podman, runc, debootstrap)"
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
for tool in buildah podman runc debootstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "==> iproute2 (the node network of the integration tests: ip netns, veth)"
if ! [ -x /usr/sbin/ip ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
fi

echo "==> iptables (the kube-proxy injected into each group runs for real in the Services test)"
if ! command -v iptables >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends iptables >/dev/null
fi

echo "==> Control plane, metrics-server, kube-apiserver v1.35 (SPDY exec tests), kube-proxy and CoreDNS binaries (built once per pinned version)"
python3 -m vk_eci cluster build

echo "==> Static checks"
python3 -m ruff check .
python3 -m mypy
lint-imports  # the layering contracts of pyproject.toml [tool.importlinter]
hadolint Dockerfile

echo "==> Container image (the Dockerfile on a local Debian base; cached)"
bash hack/image/build.sh localhost/vk-eci:test

echo "==> Tests"
# Hypothesis draws the same examples on every CI run (profile registered in tests/conftest.py).
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
set +e
python3 -m pytest -ra "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$code"
