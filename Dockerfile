# Airlock as a container: the wheel built from this repository, installed as a user would install it (not editable,
# nothing of the source tree in the image), run as a non-root user. The migrations travel inside the wheel.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY alembic ./alembic
COPY service ./service
COPY webui ./webui
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
COPY --from=build /dist /tmp/dist
RUN pip install --no-cache-dir /tmp/dist/airlock-*.whl \
    && rm -rf /tmp/dist \
    && useradd --system --home-dir /var/lib/airlock --create-home airlock

USER airlock
WORKDIR /var/lib/airlock
ENV AIRLOCK_DATA_DIR=/var/lib/airlock
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"]
CMD ["airlock", "serve", "--config", "/etc/airlock/airlock.yaml"]
