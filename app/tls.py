"""One TLS client context per process for every GitHub client.

githubkit opens a fresh ``httpx.AsyncClient`` for each request it is not given a client for, and httpx then
builds a new default SSL context, loading the whole CA bundle again: measured as a fifth of the test suite's
in-process CPU, and paid by every API call in production. An :class:`ssl.SSLContext` is safe to share across
threads and event loops, so Otto builds it once (honouring ``SSL_CERT_FILE``/``SSL_CERT_DIR`` as httpx does).
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=True, trust_env=True)
