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

ENV CHATOPS_DB=/data/chatops.db \
    PYTHONUNBUFFERED=1
RUN mkdir /data && chown chatops:chatops /data
VOLUME ["/data"]
USER chatops

# SIGTERM lets in-flight replies finish (CHATOPS_SHUTDOWN_GRACE) before exit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["chatops"]
CMD ["run"]
