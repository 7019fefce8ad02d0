FROM python:3.11-slim

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
