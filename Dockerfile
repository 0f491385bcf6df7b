# tfsoap: PredictService in a container. Build and run (docs/deploying.md has the details):
#   docker build -t tfsoap .
#   docker run --rm -p 8080:8080 -v "$PWD/store:/models:ro" tfsoap
# Without a store mounted on /models the image serves the bundled demo model (digits).
ARG BASE=python:3.11-slim

# ---- builder: a virtual environment with tfsoap, its Python client and their dependencies
FROM ${BASE} AS builder
# Marks this stage's cached images, so a rebuild can clear the ones it no longer uses.
LABEL org.tfsoap.stage=builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/tfsoap
WORKDIR /src
COPY . .
# The client gives `tfsoap predict` and `tfsoap models --url` inside the container too.
RUN /opt/tfsoap/bin/pip install ./clients/python . \
 && /opt/tfsoap/bin/pip uninstall --yes pip setuptools wheel \
 && mkdir -p /models \
 && cp -r model_store/demo_store/. /models/

# ---- runtime: the base image, the virtual environment and the demo store; nothing else
FROM ${BASE}
# A fixed numeric user, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --gid 10001 tfsoap \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin tfsoap
COPY --from=builder /opt/tfsoap /opt/tfsoap
COPY --from=builder --chown=10001:10001 /models /models
ENV PATH=/opt/tfsoap/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TFSOAP_MODEL_STORE=/models \
    TFSOAP_HOST=0.0.0.0 \
    TFSOAP_PORT=8080
# A volume starts with the image's /models (the demo store); mount your own store over it.
VOLUME ["/models"]
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# No curl in slim images: Python's urllib asks /healthz (200 once the process serves).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TFSOAP_PORT', '8080'), timeout=4)"]
# Exec form: tfsoap is PID 1 and gets SIGTERM itself; it stops listening and finishes the
# requests in flight (no shell in between to swallow the signal).
ENTRYPOINT ["tfsoap"]
CMD ["serve", "--host", "0.0.0.0"]
