# syntax=docker/dockerfile:1
# The model service image: base (serving-only) install + one registered model version.
#   docker build --build-arg MODEL_DIR=.artifacts/serving/v<n> \
#     --build-arg MODEL_VERSION=<n> --build-arg MODEL_SHA256=<sha256 of model.joblib> -t <repo>:v<n> .
# (MODEL_DIR: a folder inside the build context with model.joblib + manifest.json.)
# The deploy sensor runs exactly this (see README "Deploy").

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY insurance_pipeline ./insurance_pipeline
# Base dependencies only: no dagster, tpot, featuretools, mlflow or test packages.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt . \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM python:3.11.7-slim-bookworm
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG MODEL_DIR=model
ARG MODEL_VERSION
ARG MODEL_SHA256
LABEL org.opencontainers.image.title="insurance-charges-model" \
      insurance-pipeline.model-version="${MODEL_VERSION}" \
      insurance-pipeline.model-sha256="${MODEL_SHA256}"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVING_ARTIFACT_DIR=/app/model \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8000 \
    MODEL_VERSION=${MODEL_VERSION} \
    MODEL_SHA256=${MODEL_SHA256}
RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --no-create-home app
COPY --from=build /opt/venv /opt/venv
COPY --chown=root:root ${MODEL_DIR}/model.joblib ${MODEL_DIR}/manifest.json /app/model/
# The build fails unless the baked-in file is the registered one.
RUN test -n "${MODEL_SHA256}" && echo "${MODEL_SHA256}  /app/model/model.joblib" | sha256sum -c -
WORKDIR /app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/health/ready', timeout=2).status != 200)"]
ENTRYPOINT ["python", "-m", "insurance_pipeline.serving"]
