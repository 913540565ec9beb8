# The chat-ops bot as a container: slim Python, ffmpeg for audio, non-root, data on a volume.
FROM python:3.12-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 chatops
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
RUN pip install --no-cache-dir .

# The operations port (docs/operations.md): /healthz, /readyz, /metrics on 9102.
ENV CHATOPS_DB=/data/chatops.db \
    CHATOPS_OPS_HOST=0.0.0.0 \
    CHATOPS_OPS_PORT=9102 \
    PYTHONUNBUFFERED=1
RUN mkdir /data && chown chatops:chatops /data
VOLUME ["/data"]
USER chatops

EXPOSE 9102
# Liveness through /healthz with the standard library (the image has no curl); passes without
# checking when the operations port is turned off (CHATOPS_OPS_PORT empty) or random (0).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; p = os.environ.get('CHATOPS_OPS_PORT', ''); p in ('', '0') or u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"]

# SIGTERM lets in-flight replies finish (CHATOPS_SHUTDOWN_GRACE) before exit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["chatops"]
CMD ["run"]
