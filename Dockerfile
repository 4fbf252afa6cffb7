# syntax=docker/dockerfile:1
#
# The opsbot image: every Python package installed from requirements/runtime.lock with its
# hash checked (no dependency resolution at build time, binary wheels only, no compiler
# anywhere), into /opt/opsbot in the build stage; the runtime stage copies that tree,
# owned by root and read-only to the unprivileged user it runs as (fixed UID/GID), along
# with the SBOM of exactly that tree. `opsbot serve` is the default command.
#
#   docker build -t opsbot:0.1.0 .
#   docker run --rm opsbot:0.1.0 --help
#
# Deploying, configuring and upgrading it, and rebuilding the exact image of a release:
# docs/operations.md. Changing a dependency: CONTRIBUTING.md (./scripts/lock).
# BuildKit is required; it is the default builder of Docker 23 and later.

# The base image by digest, not only by tag: a tag moves when Docker republishes it (Debian
# security updates), a digest never does. Updating it: docs/operations.md ("The base image").
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie@sha256:193fdd0bbcb3d2ae612bd6cc3548d2f7c78d65b549fcaa8af75624c47474444d

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# The locks before the sources, so the dependency layer is rebuilt only when a lock changes.
COPY requirements/build.lock requirements/runtime.lock requirements/

# pip itself and the build backend at their locked versions, then the runtime dependencies
# into a venv without pip: exactly the files whose hashes the lock names (--require-hashes),
# nothing resolved (--no-deps), wheels only (--only-binary: a package without a wheel for
# this platform fails the build here instead of needing a compiler).
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r requirements/build.lock \
    && python -m venv --without-pip /opt/opsbot \
    && python -m pip --python /opt/opsbot/bin/python install --no-cache-dir --require-hashes --no-deps \
       --only-binary=:all: -r requirements/runtime.lock

# Exactly what the wheel is made of (tests/integration/test_packaging.py builds a wheel
# from these same paths, so a file missing here fails the test suite, not a deploy).
COPY pyproject.toml README.md ./
COPY bot/ bot/
COPY commands/ commands/
COPY migrations/ migrations/

# opsbot's wheel, built by the locked setuptools (--no-build-isolation: the build fetches
# nothing), installed without dependencies; `pip check` proves the locked set satisfies it.
# Then nothing in the tree is writable but by its owner, root.
RUN python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && python -m pip --python /opt/opsbot/bin/python install --no-cache-dir --no-deps --no-index /wheels/opsbot-*.whl \
    && python -m pip --python /opt/opsbot/bin/python check \
    && chmod -R go-w /opt/opsbot

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG PYTHON_IMAGE
ARG OPSBOT_UID=10001
ARG OPSBOT_GID=10001

LABEL org.opencontainers.image.title="opsbot" \
      org.opencontainers.image.description="ChatOps bot for platform teams: Slack slash commands and approvals that run YAML runbooks on Kubernetes and AWS." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

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

# The venv as the build stage left it (same base image, so its interpreter path is the
# same), owned by root: the runtime user can read and run it, never change it. No pip, no
# wheel, no compiler comes along. The SBOM describes exactly this tree (./scripts/sbom).
COPY --from=build /opt/opsbot /opt/opsbot
COPY requirements/sbom.cdx.json /usr/share/opsbot/sbom.cdx.json
RUN opsbot --version

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
