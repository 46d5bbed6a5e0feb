# syntax=docker/dockerfile:1
# The five Python images, from one file: a runtime stage (RUNTIME), the dependencies of one extra of
# pyproject.toml (EXTRA), the sources, and one final stage per service (the build target) that sets its
# port and command. docker compose builds it from the repository root with the target and the arguments
# scripts/generate_compose.py writes; by hand (the tag is the version in pyproject.toml):
#   docker build --target orchestrator -t meshforge/orchestrator:0.1.0 .
#   docker build --target image-service --build-arg EXTRA=image -t meshforge/image-service:0.1.0 .
#   docker build --target flux-service --build-arg RUNTIME=torch --build-arg EXTRA=flux \
#       -t meshforge/flux-service:0.1.0 .
#   docker build --target reconstruction-service --build-arg RUNTIME=torch --build-arg EXTRA=reconstruction \
#       -t meshforge/reconstruction-service:0.1.0 .
#   docker build --target postprocess-service --build-arg RUNTIME=blender --build-arg EXTRA=postprocess \
#       -t meshforge/postprocess-service:0.1.0 .
# The orchestrator image also runs the dispatcher (command python -m orchestrator.dispatcher). With no
# target and no arguments the build is the orchestrator's. It needs BuildKit (the default builder of
# Docker Engine 23 and later, and of docker compose): it builds only the stages the target uses.
#
# Bases (pin them by digest in your registry mirror if you need bit-for-bit rebuilds):
# - PYTHON_IMAGE, for the orchestrator, image-service and postprocess-service: python:3.11-slim-bookworm
#   (Python 3.11 is what the project and bpy 4.5 need).
# - BASE_IMAGE, for the GPU images (flux-service, reconstruction-service): NVIDIA's CUDA runtime image
#   (CUDA user-space libraries for torch and for any CUDA extension), Ubuntu 24.04. The CPU profile of
#   docker-compose builds them on plain ubuntu:24.04 with TORCH_CUDA=cpu.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG BASE_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
# The runtime-* stage the image starts from: python (orchestrator, image-service), torch (flux-service,
# reconstruction-service: BASE_IMAGE, with torch from the wheel index TORCH_CUDA) or blender
# (postprocess-service: python with headless Blender).
ARG RUNTIME=python

# ---- runtimes: Python 3.11 in a venv /opt/venv that has pip ----

FROM ${PYTHON_IMAGE} AS python-env
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

FROM python-env AS runtime-python
RUN python -m venv /opt/venv

FROM python-env AS runtime-blender
# Headless Blender (bpy) for FBX export, in a venv of its own because bpy pins numpy<2 (see
# scripts/bootstrap). Its own layer first: ~1 GB that changes only with blender-requirements.txt.
# The X11/GL libraries are what bpy's __init__.so links against (ldd); no display is needed.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libgl1 libice6 libsm6 libx11-6 libxext6 libxfixes3 libxi6 libxkbcommon0 libxrender1 \
    && rm -rf /var/lib/apt/lists/*
COPY postprocess-service/blender-requirements.txt /tmp/blender-requirements.txt
RUN python -m venv /opt/blender-venv \
    && /opt/blender-venv/bin/pip install -r /tmp/blender-requirements.txt \
    && rm /tmp/blender-requirements.txt
ENV MESHFORGE_BLENDER_PYTHON=/opt/blender-venv/bin/python
RUN python -m venv /opt/venv

FROM ${BASE_IMAGE} AS runtime-torch
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_NO_CACHE=1
# The NVIDIA container toolkit injects the host driver; compute is the part CUDA needs.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Python 3.11 (what the project is tested with; Ubuntu 24.04 ships 3.12): a standalone CPython fetched
# by uv, in a venv that has pip, so the steps below are the same as in the other runtimes.
COPY --from=ghcr.io/astral-sh/uv:0.9.7 /uv /usr/local/bin/uv
RUN uv venv --seed --python 3.11.14 /opt/venv

# torch first, from the CUDA wheel index: pyproject pins torch==2.13.0, and a CUDA build of that release
# satisfies the pin, so the extra's install below keeps it instead of pulling PyPI's default build.
# TORCH_CUDA names the wheel index (cu130 needs an NVIDIA driver >= 580; cu128 suits older drivers).
ARG TORCH_CUDA=cu130
RUN pip install torch==2.13.0 --index-url "https://download.pytorch.org/whl/$TORCH_CUDA"

# ---- the application, on the runtime RUNTIME names ----

# runtime-${RUNTIME} names one of the stages above, not an image: it has no tag to pin. (Nor can
# hadolint see that stage's PIP_NO_CACHE_DIR, hence the --no-cache-dir spelled out below.)
# hadolint ignore=DL3006
FROM runtime-${RUNTIME} AS app
WORKDIR /src

# Dependencies before sources, so that a code change does not reinstall them: resolve the extra EXTRA
# (orchestrator, image, flux, reconstruction or postprocess, and the extras it names) from
# pyproject.toml alone, and pip-install exactly that list.
COPY pyproject.toml README.md scripts/extra_requirements.py ./
ARG EXTRA=orchestrator
RUN python extra_requirements.py "$EXTRA" > requirements.txt && pip install --no-cache-dir -r requirements.txt

# The sources: every package pyproject.toml lists must exist for setuptools, so all of them come in.
COPY meshforge ./meshforge
COPY orchestrator ./orchestrator
COPY image-service ./image-service
COPY flux-service ./flux-service
COPY reconstruction-service ./reconstruction-service
COPY postprocess-service ./postprocess-service
RUN pip install --no-cache-dir --no-deps . && rm -rf /src

# An unprivileged user. Its uid should own the bind-mounted ./models ./inputs ./outputs ./cache on the
# host (1000 is the first user on most Linux machines): docker compose build --build-arg UID=$(id -u).
# Ubuntu 24.04 images (the GPU bases) come with a user "ubuntu" holding uid 1000: it makes way for ours.
ARG UID=1000
RUN if id ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && useradd --uid "$UID" --create-home --shell /usr/sbin/nologin meshforge \
    && mkdir -p /app /models /inputs /outputs /cache \
    && chown "$UID" /app /models /inputs /outputs /cache
# Numeric, so that runtimes that check for a non-root uid (Kubernetes runAsNonRoot) can.
USER $UID
WORKDIR /app

ENV MESHFORGE_HOST=0.0.0.0 \
    MESHFORGE_MODELS_DIR=/models \
    MESHFORGE_INPUTS_DIR=/inputs \
    MESHFORGE_OUTPUTS_DIR=/outputs \
    MESHFORGE_CACHE_DIR=/cache

# ---- the services (build targets): each its settings default port and its package ----

# image-service: multi-view prompts via flux-service, URL downloads, normalisation (EXTRA=image).
FROM app AS image-service
EXPOSE 38110
CMD ["python", "-m", "image_service"]

# flux-service: text to image, one process per GPU (RUNTIME=torch, EXTRA=flux).
FROM app AS flux-service
EXPOSE 38120
CMD ["python", "-m", "flux_service"]

# reconstruction-service: views to mesh, one process per GPU (RUNTIME=torch, EXTRA=reconstruction).
FROM app AS reconstruction-service
EXPOSE 38130
CMD ["python", "-m", "reconstruction_service"]

# postprocess-service: clean, decimate, place, export (CPU), with headless Blender (RUNTIME=blender,
# EXTRA=postprocess).
FROM app AS postprocess-service
EXPOSE 38140
CMD ["python", "-m", "postprocess_service"]

# The orchestrator: the public API (python -m orchestrator) and, with another command, the dispatcher
# (python -m orchestrator.dispatcher). Last, so that it is the default target.
FROM app AS orchestrator
EXPOSE 38100
CMD ["python", "-m", "orchestrator"]
