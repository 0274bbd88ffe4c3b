"""Docker HEALTHCHECK for the web container: GET /healthz/ on the local gunicorn.

Sent with a Host header that ALLOWED_HOSTS accepts (Django answers 400 to any other),
and as if through the TLS proxy, so that an HTTPS redirect cannot fail the check.
Exit code 0 when the page answers 200, 1 otherwise.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def allowed_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "localhost").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def main() -> int:
    url = os.environ.get("HEALTHCHECK_URL", "http://127.0.0.1:8000/healthz/")
    headers = {"Host": allowed_host(), "X-Forwarded-Proto": "https"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - a local http URL
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
