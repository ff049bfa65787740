# Airlock as a container. The source stays in /app (installed in place), because migrations run from alembic/ there.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY service ./service
COPY webui ./webui
RUN pip install --no-cache-dir -e . \
    && useradd --system --home-dir /var/lib/airlock --create-home airlock

USER airlock
ENV AIRLOCK_DATA_DIR=/var/lib/airlock
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
CMD ["airlock", "serve", "--config", "/etc/airlock/airlock.yaml"]
