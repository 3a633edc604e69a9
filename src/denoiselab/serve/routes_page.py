"""The page: index.html at "/", and the files in static/ (index.html, style.css and the ES
modules app.js imports) at /static/<name>.

Only the files in static/ are served, by exact name: a name is looked up in the listing made when
the app is built, never joined into a path first, so nothing outside static/ can be reached.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(str(resources.files("denoiselab.serve").joinpath("static")))
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".png": "image/png", ".svg": "image/svg+xml"}  # fmt: skip


def page_router() -> APIRouter:
    router = APIRouter()
    static_files = {p.name for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in STATIC_TYPES} if STATIC_DIR.is_dir() else set()

    @router.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", media_type=STATIC_TYPES[".html"], headers={"Cache-Control": "no-cache"})

    @router.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in static_files:  # exact names only: nothing outside static/ can be reached
            raise HTTPException(404, f"name: no static file {name[:80]!r}")
        path = STATIC_DIR / name
        return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})

    return router
