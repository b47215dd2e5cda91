# proguard-rails guard server (proguard-rails serve): OpenAI-compatible /v1/moderations,
# /v1/check, /healthz, /readyz, /metrics on port 8080. See docs/server.md.
#
#   docker build --build-arg VARIANT=lite -t proguard-server:lite .
#       CPU only: the embedded lite judge (onnxruntime; no torch, no model download, no GPU)
#   docker build --build-arg VARIANT=endpoint -t proguard-server:endpoint .
#       thinnest: the judge is ProGuard on a GPU vLLM endpoint (set PROGUARD_BASE_URL)
#
#   docker run -p 8080:8080 -e PROGUARD_SERVER_API_KEYS=change-me proguard-server:lite
#   docker run -p 8080:8080 -e PROGUARD_SERVER_API_KEYS=change-me \
#       -e PROGUARD_BASE_URL=http://vllm:8000/v1 proguard-server:endpoint
#
# The server listens on 0.0.0.0 inside the container, so it refuses to start without API keys
# (PROGUARD_SERVER_API_KEYS, or PROGUARD_SERVER_API_KEYS_FILE pointing at a mounted secret).
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

ARG VARIANT=lite
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1

RUN useradd --create-home --uid 10001 proguard
WORKDIR /opt/proguard-rails
COPY pyproject.toml README.md ./
COPY proguard_rails ./proguard_rails
COPY integrations ./integrations

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The install commands are README.md's ("Run the guard server"); tests/server/test_dockerfile.py
# checks that they stay identical. DL3013 (pin versions): the packages come from this checkout,
# bounded by pyproject.toml.
# hadolint ignore=DL3013
RUN if [ "$VARIANT" = "lite" ]; then \
        pip install ".[serve,lite]"; \
    elif [ "$VARIANT" = "endpoint" ]; then \
        pip install ".[serve]"; \
    else \
        echo "VARIANT must be 'lite' or 'endpoint', not '$VARIANT'" >&2; exit 1; \
    fi

USER 10001
ENV PROGUARD_SERVER_HOST=0.0.0.0 \
    PROGUARD_SERVER_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["proguard-rails", "serve"]
CMD []
