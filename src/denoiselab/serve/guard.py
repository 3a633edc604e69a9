"""Who may change things: a guard in front of every state-changing request (POST and the like).

A web page on another site can make the browser send a "simple" cross-site request to this app
(a form, or ``fetch`` with ``mode: "no-cors"``): the browser never shows it the answer, but the
request itself would start a training job.  So a state-changing request is refused (403) when
its ``Sec-Fetch-Site`` says it came from another site, or its ``Origin`` is not this app's own
(scheme and Host), and refused (415) unless its body is ``application/json`` -- a content type a
cross-site page cannot send without a CORS preflight, which this app never grants.  Requests
without these headers (curl, scripts, the test client) are allowed: they are not a browser
acting for another site.  A body is read only when its Content-Length is given and at most
MAX_BODY_BYTES (413 / 411 otherwise), so no request can make the server buffer unbounded input.
"""

from __future__ import annotations

import json

from .limits import MAX_BODY_BYTES

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE = frozenset({"same-origin", "none"})  # "none": typed in the address bar, a bookmark


def _refuse(status: int, detail: str):
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {"type": "http.response.start", "status": status, "headers": headers}, {"type": "http.response.body", "body": body}


def refusal(method: str, scheme: str, headers: dict[str, str]) -> tuple[int, str] | None:
    """(status, detail) when a request must be refused, else None.  ``headers``: lower-case names."""
    if method in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site not in SAME_SITE:
        return 403, f"origin: a request from another site (Sec-Fetch-Site: {site[:40]}) may not change anything here"
    origin = headers.get("origin")
    own = f"{scheme}://{headers.get('host', '')}"
    if origin is not None and origin != own:
        return 403, f"origin: a request from {origin[:80]!r} may not change anything here; use the page at {own[:80]}"
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        return 415, f"body: expected Content-Type application/json, got {media[:80] or 'none'!r}"
    length = headers.get("content-length")
    if length is None:
        return 411, "body: a Content-Length header is required"
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return 413, f"body: at most {MAX_BODY_BYTES} bytes, got Content-Length {length[:20]}"
    return None


class SameOriginGuard:
    """ASGI middleware applying ``refusal`` to every HTTP request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            refused = refusal(scope["method"], scope.get("scheme", "http"), headers)
            if refused is not None:
                start, body = _refuse(*refused)
                await send(start)
                await send(body)
                return
        await self.app(scope, receive, send)
