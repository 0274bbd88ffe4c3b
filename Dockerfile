# syntax=docker/dockerfile:1
# vpnctl: one build, two processes, each in its own container. The targets `web` (the
# default, last) and `worker` share every layer; they differ in command and HEALTHCHECK.
#   web:     docker build -t vpnctl .
#            docker run -p 8000:8000 -e SECRET_KEY=... -e DATABASE_URL=postgres://... \
#                       -e ALLOWED_HOSTS=vpnctl.example.com vpnctl
#   worker:  docker build --target worker -t vpnctl-worker .
#            docker run -e SECRET_KEY=... -e DATABASE_URL=... vpnctl-worker
#            (or the web image with `--health-cmd "python manage.py check_worker"
#             --health-start-period 180s python manage.py qcluster`)
#   migrations, once per release before the new web and worker start:
#     docker run --rm -e SECRET_KEY=... -e DATABASE_URL=... vpnctl python manage.py migrate
# With SQLite (no DATABASE_URL), mount a volume on /app/var and run exactly one worker.

ARG PYTHON_IMAGE=python:3.11-slim

# -- builder: dependencies into a venv, messages compiled, static files collected ---------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends gettext \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /app
# The dependencies, read from pyproject.toml alone: this layer survives code changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install --only-binary=:all: -r /tmp/requirements.txt
COPY . .
RUN python -m compileall -q maintenance vpnctl
# Settings refuse to load without a real SECRET_KEY; this one exists only for this line
# (nothing signed here is kept) and is not in the image's environment.
RUN SECRET_KEY=build-time-only-throwaway-key-7f3c2e9a41b8d605-c3e19a0b \
    sh -c 'python manage.py compilemessages && python manage.py collectstatic --noinput'

# -- runtime: what both processes need ------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GUNICORN_CMD_ARGS="--workers 2 --threads 4 --access-logfile -"
RUN useradd --system --user-group --uid 10001 --no-create-home --home-dir /app vpnctl
COPY --from=builder /opt/venv /opt/venv
# The code stays root's and read-only to the app; only var/ (SQLite) is the app's.
COPY --from=builder /app /app
RUN mkdir -p /app/var && chown vpnctl:vpnctl /app/var
WORKDIR /app
USER vpnctl

# -- worker: django-q2's cluster; unhealthy once no sweeper run started for
# VPNCTL_WORKER_STALE_SECONDS (README, "Is the worker alive?"). Docker only marks it
# unhealthy: let the orchestrator (or an autoheal container) restart it. The start period
# covers a new cluster's first sweeper run.
FROM runtime AS worker
HEALTHCHECK --interval=60s --timeout=30s --start-period=180s --retries=2 \
    CMD ["python", "manage.py", "check_worker"]
CMD ["python", "manage.py", "qcluster"]

# -- web (the default target): gunicorn; healthy while it and the database answer ----------
FROM runtime AS web
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "scripts/healthcheck.py"]
CMD ["gunicorn", "vpnctl.wsgi", "--bind", "0.0.0.0:8000"]
