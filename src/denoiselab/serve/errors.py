"""How errors answer: every error is JSON with a ``detail`` string that names its field.

A request that fails validation gets 422 with ``detail`` ("steps: Input should be less than or
equal to 250"; several errors joined by "; ") and ``errors``, one {field, message} each.  A
JobError answers with its own status (404 for an unknown job, 409 for a taken name or a job
that has ended, 429 when busy).
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .jobs import JobError


def validation_message(exc: RequestValidationError) -> tuple[str, list[dict]]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        named = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*): (.*)$", msg, re.DOTALL)
        if field == "body" and named:  # a check across fields (model_validator) names its field itself
            field, msg = named.groups()
        errors.append({"field": field, "message": msg})
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        message, errors = validation_message(exc)
        return JSONResponse(status_code=422, content={"detail": message, "errors": errors})

    @app.exception_handler(JobError)
    async def _job_error(request: Request, exc: JobError):
        return JSONResponse(status_code=exc.status, content={"detail": str(exc)})
