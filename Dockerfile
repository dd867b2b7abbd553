# stockcast service image: one image for the API (gunicorn), the scheduler and one-shot CLI jobs.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=3 \
    STOCKCAST_DATA_DIR=/var/lib/stockcast \
    STOCKCAST_LOG_FORMAT=json

RUN groupadd --system --gid 10001 stockcast \
    && useradd --system --uid 10001 --gid stockcast --home-dir /app --shell /usr/sbin/nologin stockcast

WORKDIR /app

# Dependency layer: only pyproject.toml, so source edits do not reinstall TensorFlow.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Source layer.
COPY forecaster ./forecaster
COPY api ./api
COPY jobs ./jobs
COPY cli ./cli
COPY migrations ./migrations
COPY alembic.ini README.md ./
RUN pip install --no-deps . \
    && mkdir -p /var/lib/stockcast \
    && chown -R stockcast:stockcast /var/lib/stockcast

USER stockcast
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)" || exit 1

CMD ["stockcast", "serve", "--host", "0.0.0.0", "--port", "8000"]
