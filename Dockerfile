# lbipam operator image.
#   docker build -t lbipam:0.1.0 .
# BASE is any Debian-like image with python3 (3.11+) and its venv module; both stages use it,
# so the virtualenv's interpreter is the one the final image runs.
ARG BASE=python:3.11.14-slim-bookworm

# Builder: install the package and its dependencies into a virtualenv at /opt/lbipam.
FROM ${BASE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python3 -m venv /opt/lbipam

WORKDIR /src
# A build machine behind a TLS-inspecting proxy passes its CA bundle as the secret `pip-cert`
# (docker/podman/buildah build --secret id=pip-cert,src=...): mounted for the pip steps only,
# never part of a layer. Without it pip trusts the base's CA store.
# The dependencies come first, from pyproject.toml alone, so a change to operator/ reuses
# their layers. Byte-code is compiled here because the root filesystem is read-only at run
# time: without .pyc files every start would compile Kopf and aiohttp again.
COPY pyproject.toml ./
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && /opt/lbipam/bin/python -I -c "import tomllib; \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
open('/tmp/requirements.txt', 'w').write(chr(10).join(deps))" \
    && /opt/lbipam/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The package itself; then pip goes, and every module must import.
COPY README.md ./
COPY operator/ ./operator/
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && /opt/lbipam/bin/pip install --no-cache-dir --no-deps . \
    && /opt/lbipam/bin/pip uninstall --yes --quiet pip setuptools \
    && /opt/lbipam/bin/python -I -c "import importlib, pkgutil, lbipam; \
[importlib.import_module(m.name) for m in pkgutil.walk_packages(lbipam.__path__, 'lbipam.') \
 if not m.name.endswith('__main__')]"

# Final: the base plus the virtualenv, run as an unprivileged user.
FROM ${BASE}

LABEL org.opencontainers.image.title="lbipam" \
      org.opencontainers.image.description="Assigns LoadBalancer Service addresses from IPPool resources" \
      org.opencontainers.image.licenses="Apache-2.0"

# mimalloc, with Python's objects in it too (PYTHONMALLOC=malloc): it gives back the pages it
# frees. pymalloc keeps a whole 1 MiB arena while one object in it lives, and glibc keeps the
# free space inside its heap; under an hour of churn that crept +1.44 to +1.99 MiB/h, and with
# mimalloc +0.51 to +1.64 (bench/README.md § The allocator). The library is found on the default
# path, on any architecture.
# Freed pages go back at once, not after mimalloc's 25 ms (500 ms for a segment): mimalloc
# carries out a delayed give-back only when it next works in that segment, so the pages a sweep
# freed stayed resident until the next sweep, stepping RSS up or down by a MiB every ten
# minutes. It costs ~2% more CPU, in madvise (bench/README.md § Giving back at once).
# Its version is the base's Debian release's, as the base's own libraries are (DL3008).
# hadolint ignore=DL3008
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libmimalloc2.0 \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

ENV PATH="/opt/lbipam/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LD_PRELOAD=libmimalloc.so.2 \
    PYTHONMALLOC=malloc \
    MIMALLOC_DECOMMIT_DELAY=0 \
    MIMALLOC_SEGMENT_DECOMMIT_DELAY=0

COPY --from=builder /opt/lbipam /opt/lbipam

USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["lbipam", "run"]
