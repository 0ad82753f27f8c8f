# syntax=docker/dockerfile:1
# The vk-eci image: `vk-eci run` as a non-root user. Build from the repository root:
#   docker build -t vk-eci:0.1.0 .
# Settings come as flags or VK_ECI_* variables (see `vk-eci run --help`); credentials only from
# Alibaba Cloud's credential chain (ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, RRSA, RAM role).

# The base is an argument: users get the official image pinned by digest; CI, which reaches no
# image registry, passes a local stand-in made from Debian's packages (hack/image/base.sh).
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# Stage 1: build the wheel, so the runtime image carries no build tools or sources.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY matcher/ matcher/
COPY vk_eci/ vk_eci/
RUN python -m pip wheel --wheel-dir /wheels .

# Stage 2: runtime.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="vk-eci" \
      org.opencontainers.image.description="Virtual Kubernetes node running pods on Alibaba Cloud ECI, started fast from image caches" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# tini as PID 1: the kernel ignores SIGTERM sent to a PID 1 without a handler, and a virtual
# node must hear it to stop in stages (release leases, finish in-flight ECI calls).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN python -m pip install --no-index --find-links /wheels /wheels/vk_eci-*.whl \
 && rm -rf /wheels \
 && vk-eci run --help >/dev/null
# A fixed numeric uid/gid (the chart's podSecurityContext uses the same) so that
# runAsNonRoot can be verified by the kubelet.
RUN groupadd --system --gid 10001 vk-eci \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin vk-eci
USER 10001:10001
WORKDIR /tmp
# 10250: kubelet API (logs, exec, stats); 10255: Prometheus /metrics.
EXPOSE 10250 10255
ENTRYPOINT ["/usr/bin/tini", "--", "vk-eci", "run"]
