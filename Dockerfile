# kit-sync in a container. Build: docker build -t kit-sync .
# Run, compose, health checks and secrets: docs/service.md.
#
# Two stages: the build stage installs kit-sync into a virtualenv exactly as the
# README does (with every backend); the final image gets only that virtualenv, so
# neither the source tree nor pip's cache ends up in a layer. Nothing secret is
# copied in (.dockerignore keeps configs, state and .env files out of the context):
# the config is mounted read-only at run time and secrets come from the
# environment or mounted files.

# Python 3.11: the version the test suite runs on.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kit_sync ./kit_sync
# The README's install command ("Run as a service"): keep the two identical.
RUN python3 -m venv /opt/kit-sync && /opt/kit-sync/bin/pip install ".[all]"

FROM python:3.11-slim-bookworm
# KIT_SYNC_CONFIG lets `docker exec <container> kit-sync status` find the config;
# with no `state:` in it, the state database goes to /data/state/kit-sync/.
ENV PATH=/opt/kit-sync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KIT_SYNC_CONFIG=/config/config.yaml \
    XDG_STATE_HOME=/data/state \
    HOME=/data
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin kit \
    && mkdir -p /config /data \
    && chown kit:kit /data
COPY --from=build /opt/kit-sync /opt/kit-sync
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# Unhealthy when the last sync cycle failed or none succeeded within 3 × sync.every.
HEALTHCHECK --interval=1m --timeout=30s --start-period=2m --retries=3 \
    CMD ["kit-sync", "health"]
# kit-sync is PID 1 and handles SIGTERM itself: `docker stop` ends it within seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/kit-sync/bin/kit-sync", "--log-format", "json", "--config", "/config/config.yaml"]
CMD ["run"]
