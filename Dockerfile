# Qwen3-TTS server image: an OpenAI-compatible text-to-speech HTTP server.
#
#   docker build -t qwen3-tts-server .
#   docker run --gpus all -p 8000:8000 --stop-timeout 45
#       -v qwen3-tts-hf-cache:/data/hf-cache -v qwen3-tts-voices:/data/voices -v qwen3-tts-jobs:/data/jobs qwen3-tts-server
#
# compose.yaml next to this file does the same with every setting spelled out.
# Needs BuildKit (the default builder since Docker 23) for the uv cache mounts.
#
# Python: both stages use the same uv-managed CPython 3.11 (python-build-standalone),
# installed by uv into /opt/python in the builder and copied unchanged into the runtime
# stage at the same path, together with the virtualenv at /app/.venv. Those builds are
# relocatable and self-contained (their own OpenSSL, sqlite, ...), so the runtime image
# needs no PPA and no distro Python, and the virtualenv's interpreter links stay valid.
# The builder starts from python:3.11-slim only to have pip for installing uv itself.
# Its glibc (Debian 12, 2.36) is not newer than the runtime's (Ubuntu 24.04, 2.39), so
# every wheel uv picks in the builder also loads at runtime.

ARG UV_VERSION=0.13.9
ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------
# Builder: resolve nothing, install exactly what uv.lock pins (the tests' resolution).
# ---------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS builder

ARG UV_VERSION
ARG PYTHON_VERSION
# An optional extra to install, e.g. `--build-arg EXTRAS=ray` for an image that runs on a Ray
# cluster (KubeRay, deploy/ray/), `aligner` for word timestamps (ALIGNER_MODEL_ID) or
# `quantize`; empty for the plain server.
ARG EXTRAS=""

# UV_PYTHON_PREFERENCE=only-managed keeps uv away from this image's /usr/local Python,
# which does not exist in the runtime stage.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && uv python install "${PYTHON_VERSION}"

WORKDIR /app

# Dependencies first (they change rarely and are gigabytes: torch + CUDA wheels) ...
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --no-editable --python "${PYTHON_VERSION}" \
        ${EXTRAS:+--extra "${EXTRAS}"}

# ... then the server itself, installed non-editable so the runtime needs no source tree.
# README.md is the package's readme in pyproject.toml, so the build backend needs it.
COPY README.md ./
COPY server/ ./server/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --python "${PYTHON_VERSION}" ${EXTRAS:+--extra "${EXTRAS}"}

# ---------------------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------------------
# nvidia/cuda "base" flavour, CUDA 13.0 on Ubuntu 24.04: torch 2.11.0 from PyPI is built
# for CUDA 13.0 and brings its own CUDA user-space libraries (cuBLAS, cuDNN, NCCL, ...)
# as nvidia-* wheels inside the virtualenv, so the several-GB "runtime"/"cudnn-runtime"
# flavours would only duplicate them. What this base adds over plain ubuntu:24.04 is the
# NVIDIA Container Toolkit contract: NVIDIA_VISIBLE_DEVICES / NVIDIA_DRIVER_CAPABILITIES
# (compute,utility) so the host driver and nvidia-smi are mounted in, and
# NVIDIA_REQUIRE_CUDA=cuda>=13.0, which makes the toolkit refuse to start the container
# on a host driver too old for CUDA 13 (< 580) with a clear message instead of torch
# silently falling back to CPU.
FROM nvidia/cuda:13.0.2-base-ubuntu24.04 AS runtime

ARG DEBIAN_FRONTEND=noninteractive

# sox: the qwen-tts package imports the `sox` Python wrapper, which needs the sox binary.
# libsox-fmt-all is left out on purpose: it adds MP3/PulseAudio/libao plugins that nothing
# here uses (the server decodes uploads with PyAV/soundfile, and qwen-tts only pipes raw
# audio through sox); `sox` itself already brings the base formats (WAV, FLAC, Ogg).
# ca-certificates: HTTPS to the Hugging Face Hub.
# Unprivileged user 10001 (numeric, so runAsNonRoot-style checks can verify it) owns
# /data, so the named volumes Docker seeds from these directories are writable by it.
# Ubuntu package versions are not pinned: the archive drops superseded versions, so a
# pin would break rebuilds; the image is reproducible where it matters (uv.lock).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates sox \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app \
    && mkdir -p /data/hf-cache /data/voices /data/jobs \
    && chown -R 10001:10001 /data

COPY --from=builder /opt/python /opt/python
COPY --from=builder /app/.venv /app/.venv

# OMP/MKL threads: inference runs on the GPU; more CPU threads only contend with the
# event loop and the audio encoders. expandable_segments reduces CUDA memory
# fragmentation when models are loaded, unloaded on idle and reloaded.
ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True \
    OMP_NUM_THREADS=2 \
    MKL_NUM_THREADS=2 \
    HF_HOME=/data/hf-cache \
    VOICES_DIR=/data/voices \
    JOBS_DIR=/data/jobs

WORKDIR /app
USER 10001:10001

# Model downloads (HF_HOME), saved voices and long-audio jobs survive container replacement.
VOLUME ["/data/hf-cache", "/data/voices", "/data/jobs"]

EXPOSE 8000

# /health answers as soon as the process is up (models load lazily), so a short start
# period is enough. Python instead of curl: nothing extra to install. Proxies are
# bypassed on purpose so an HTTP(S)_PROXY in the environment cannot break the probe.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ.get('PORT', '8000'); r = u.build_opener(u.ProxyHandler({})).open(f'http://127.0.0.1:{port}/health', timeout=4); sys.exit(0 if r.status == 200 else 1)"]

# SIGTERM starts a graceful drain of up to SHUTDOWN_GRACE (30 s) seconds: give the
# container longer than that to stop (docker run --stop-timeout 45, or compose's
# stop_grace_period), or in-flight requests are cut off at Docker's default 10 s.
STOPSIGNAL SIGTERM

# Same entry point as the README; arguments are passed through, e.g. a dev checkpoint:
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/devmodels:/devmodels"
#       qwen3-tts-server devmodel /devmodels/custom_voice --kind custom_voice
ENTRYPOINT ["qwen3-tts-server"]
