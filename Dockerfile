# syntax=docker/dockerfile:1
# The model service image: base (serving-only) install + one registered model version.
#   docker build --build-arg MODEL_DIR=model --build-arg MODEL_VERSION=<n> \
#     --build-arg MODEL_SHA256=<sha256 of manifest.json> -t <repo>:v<n> <context>
#   buildah bud --isolation chroot --network host (same build args) -t <repo>:v<n> <context>
# (MODEL_DIR: a folder inside the build context with model.npz + manifest.json (+ model.c and
# model.sig): the model compiled to numpy arrays and its forests to C, so the image needs no
# scikit-learn, LightGBM or OpenMP runtime.)
# BASE_IMAGE: any Debian bookworm image with python3 (3.11) at /usr/local/bin/python, e.g. a
# debootstrap minbase tree; the default is the official slim image, pinned by digest.
# The deploy sensor runs exactly this (see docs/deploy.md).
ARG BASE_IMAGE=python:3.11.7-slim-bookworm@sha256:637774748f62b832dc11e7b286e48cd716727ed04b45a0322776c01bc526afc3

FROM ${BASE_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# pip trusts the system bundle, so a build host's own CA bundle can be mounted over it
# (read-only, never copied into the image).
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
# The service's own distribution (deploy/service/pyproject.toml): the service and the
# vocabulary it shares with training; no training code, no training library.
COPY constraints.txt ./
COPY deploy/service/pyproject.toml ./pyproject.toml
COPY insurance_pipeline/__init__.py ./insurance_pipeline/
COPY insurance_pipeline/domain ./insurance_pipeline/domain
COPY insurance_pipeline/compiled ./insurance_pipeline/compiled
COPY insurance_pipeline/serving ./insurance_pipeline/serving
# Its dependencies only (numpy, FastAPI, uvicorn, pydantic). Then no installer either, and
# bytecode compiled once here instead of at every start.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir -c constraints.txt ".[verify]" \
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} + \
    && /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/venv

# The forests' C source (model.c, pinned by the manifest, signed with the folder) built into a
# shared library in a stage of its own: the image gets the library, never the compiler. A
# version without model.c (registered before native forests) gets none: numpy serves it.
FROM ${BASE_IMAGE} AS native
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG MODEL_DIR=model
COPY ${MODEL_DIR}/ /model/
# hadolint ignore=DL3008
RUN mkdir -p /opt/native \
    && if [ -f /model/model.c ]; then \
        apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev \
        && gcc -O3 -std=c99 -shared -fPIC -o /opt/native/model-native.so /model/model.c; \
    fi

FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG MODEL_DIR=model
ARG MODEL_VERSION
ARG MODEL_SHA256
# The original's OCI labels, filled by the deployer: the build time, the project's git commit
# and the model version (the registry's: the pod's app.kubernetes.io/version is the same);
# the licence is the project's (LICENSE, SPDX id), the base the image it was built FROM.
ARG BASE_IMAGE
ARG DATE_CREATED
ARG REVISION
ARG VERSION
ARG SOURCE
LABEL org.opencontainers.image.created="${DATE_CREATED}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="Insurance Charges Model Service" \
      org.opencontainers.image.description="The insurance charges model behind the original model service's REST contract." \
      org.opencontainers.image.authors="insurance_pipeline engineers" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      com.insurance-pipeline.model.name="insurance_charges_model" \
      insurance-pipeline.model-version="${MODEL_VERSION}" \
      insurance-pipeline.model-sha256="${MODEL_SHA256}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVING_ARTIFACT_DIR=/app/model \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8000 \
    MODEL_VERSION=${MODEL_VERSION} \
    MODEL_SHA256=${MODEL_SHA256} \
    SERVING_NATIVE_LIBRARY=/opt/native/model-native.so
RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --no-create-home app
COPY --from=build /opt/venv /opt/venv
COPY --from=native /opt/native/ /opt/native/
# model.npz, manifest.json, model.sig, and model.c where the version has one
COPY --chown=root:root ${MODEL_DIR}/ /app/model/
# The build fails unless the baked-in files are the approved ones: MODEL_SHA256 pins the
# manifest, which pins model.npz and model.c; the service's own loader checks them, the
# reference rows, and the native forests on the reference rows again at every start.
RUN test -n "${MODEL_SHA256}" \
    && echo "${MODEL_SHA256}  /app/model/manifest.json" | sha256sum -c - \
    && /opt/venv/bin/python -c "from insurance_pipeline.compiled.artifact import load_artifact; \
load_artifact('/app/model', '${MODEL_SHA256}')"
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/health/ready', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "insurance_pipeline.serving"]
