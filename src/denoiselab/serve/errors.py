"""How errors answer: every error is JSON with a ``detail`` string that names its field.

A request that fails validation gets 422 with ``detail`` ("steps: Input should be less than or
equal to 250"; several errors joined by "; ") and ``errors``, one {field, message} each.  A body
that is not JSON at all says where: "body: not valid JSON at character 18 (Expecting ',' ...)".
A JobError answers with its own status (404 for an unknown job, 409 for a taken name or a job
that has ended, 429 when busy).  Every message is cut to MAX_ECHO characters and carries no
absolute path of the machine (run_store.public_message), so a long string sent in is never
echoed back in full.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .jobs import JobError
from .run_store import public_message


def validation_message(exc: RequestValidationError) -> tuple[str, list[dict]]:
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":  # loc is ("body", offset): an offset, not a field
            loc = err.get("loc", ())
            at = int(loc[1]) + 1 if len(loc) > 1 and isinstance(loc[1], int) else None
            why = str((err.get("ctx") or {}).get("error", "")).strip()
            where = f" at character {at}" if at is not None else ""
            errors.append({"field": "body", "message": public_message(f"not valid JSON{where}" + (f" ({why})" if why else ""))})
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        field = public_message(".".join(loc), 80) or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        named = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*): (.*)$", msg, re.DOTALL)
        if field == "body" and named:  # a check across fields (model_validator) names its field itself
            field, msg = named.groups()
        errors.append({"field": field, "message": public_message(msg)})
    return public_message("; ".join(f"{e['field']}: {e['message']}" for e in errors), 1000), errors


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, errors = validation_message(exc)
        return JSONResponse(status_code=422, content={"detail": message, "errors": errors})

    @app.exception_handler(JobError)
    async def _job_error(request: Request, exc: JobError):
        return JSONResponse(status_code=exc.status, content={"detail": public_message(exc)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":  # no route matched, e.g. a run name with "/" in it
            detail = "path: no part of the playground's API answers this path (a run's name has no '/'; GET /api/runs lists them)"
        return JSONResponse(status_code=exc.status_code, content={"detail": public_message(detail)}, headers=getattr(exc, "headers", None))
