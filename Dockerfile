# syntax=docker/dockerfile:1
#
# The opsbot image: a wheel built in the first stage, installed with its runtime
# dependencies (wheels only, no compiler anywhere) into /opt/opsbot in the second, run as
# an unprivileged user with a fixed UID/GID. `opsbot serve` is the default command.
#
#   docker build -t opsbot:0.1.0 .
#   docker run --rm opsbot:0.1.0 --help
#
# Deploying, configuring and upgrading it: docs/operations.md.
# BuildKit is required (`RUN --mount`); it is the default builder of Docker 23 and later.

ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Exactly what the wheel is made of (tests/integration/test_packaging.py builds a wheel
# from these same paths, so a file missing here fails the test suite, not a deploy).
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY commands/ commands/
COPY migrations/ migrations/

# opsbot's wheel, then a wheel for each runtime dependency. --only-binary: a dependency
# without a wheel for this platform fails the build here instead of needing a compiler.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip wheel --only-binary=:all: --wheel-dir /wheels /wheels/opsbot-*.whl

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG OPSBOT_UID=10001
ARG OPSBOT_GID=10001

LABEL org.opencontainers.image.title="opsbot" \
      org.opencontainers.image.description="ChatOps bot for platform teams: Slack slash commands and approvals that run YAML runbooks on Kubernetes and AWS." \
      org.opencontainers.image.licenses="Apache-2.0"

# Secrets (SLACK_*, OPSBOT_DATABASE_URL) are never set here: give them at run time, best as
# files through the *_FILE variables. A variable set in the image would also win over its
# *_FILE variant and silently shadow a mounted Secret.
ENV PATH=/opt/opsbot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OPSBOT_CONFIG=/etc/opsbot/opsbot.yaml \
    OPSBOT_RUNBOOKS_DIR=/etc/opsbot/runbooks \
    PROMETHEUS_MULTIPROC_DIR=/run/opsbot/metrics

RUN groupadd --system --gid "${OPSBOT_GID}" opsbot \
    && useradd --system --uid "${OPSBOT_UID}" --gid opsbot --home-dir /var/lib/opsbot \
       --no-create-home --shell /usr/sbin/nologin opsbot \
    && install -d -o opsbot -g opsbot -m 0750 /var/lib/opsbot /run/opsbot /run/opsbot/metrics

# The wheels are bind-mounted from the build stage, so none of them stays in a layer; the
# venv gets no pip of its own (the base image's pip installs into it).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv --without-pip /opt/opsbot \
    && pip --python /opt/opsbot/bin/python install --no-cache-dir --no-index --find-links=/wheels /wheels/opsbot-*.whl \
    && opsbot --version

# The shipped runbooks are the defaults; mount a ConfigMap over /etc/opsbot/runbooks to
# replace them. There is no /etc/opsbot/opsbot.yaml on purpose: `opsbot serve` refuses to
# start without a real config rather than run the example's demo catalog in production.
COPY runbooks/ /etc/opsbot/runbooks/
COPY opsbot.example.yaml /etc/opsbot/opsbot.example.yaml

# The working directory is where the default SQLite file (sqlite:///opsbot.db) lands:
# one replica only; mount a volume here, or use PostgreSQL (docs/operations.md).
WORKDIR /var/lib/opsbot
USER ${OPSBOT_UID}:${OPSBOT_GID}
EXPOSE 3000

# Liveness only (no I/O behind /healthz); readiness (/readyz) is for the orchestrator.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('OPSBOT_PORT', '3000') + '/healthz', timeout=4)"]

ENTRYPOINT ["opsbot"]
CMD ["serve"]
