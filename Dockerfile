# The harness image: every compose service (target, master, worker, monitor, judge) runs it.
# Its base is a plain Debian bookworm with Python 3.11: the official python image where a registry
# is reachable, or the one scripts/compose/base-image.sh builds from the apt mirror and tags with
# this same name, so a build here never pulls. Build with host networking (pip needs it when the
# daemon has no bridge): `scripts/compose/build.sh`, or by hand
#   mkdir -p .docker-ca && docker build --network host -t livequery-harness:local .
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# Extra CA certificates to trust (a proxy that intercepts TLS, as behind a corporate proxy):
# build.sh copies the host's /usr/local/share/ca-certificates into .docker-ca/ (empty when none).
COPY .docker-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null

ENV VIRTUAL_ENV=/opt/lqh \
    PATH=/opt/lqh/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1
RUN python3 -m venv /opt/lqh

WORKDIR /src
# The dependencies first, from pyproject.toml alone, so a source change rebuilds only the last layer.
COPY pyproject.toml ./
RUN python -c "import subprocess, sys, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', *deps], check=True)"
COPY . .
RUN pip install --quiet --no-deps . && mkdir -p /runs

CMD ["lqharness", "--help"]
