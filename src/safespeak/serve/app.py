"""The ASGI app: `POST /v1/detect`, `GET /v1/model`, `GET /healthz` and the page at `GET /`.

FastAPI on Starlette, served by uvicorn. The upload body is read by `uploads.read_upload` from the raw
request stream (not FastAPI's form parsing, which spools large files to temporary files and reads the
whole body before any limit applies). Every refusal is a JSON object `{"error": ..., "status": ...}`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from safespeak import __version__
from safespeak.errors import UsageError
from safespeak.inference import Detector
from safespeak.serve.batching import BatchingScorer
from safespeak.serve.uploads import UploadError, decode_upload, read_upload

__all__ = ["ServeSettings", "create_app"]

log = logging.getLogger("safespeak.serve")

# the page is one file with inline CSS/JS: nothing may load from elsewhere
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; media-src 'self' blob:; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class ServeSettings:
    """Server options (`safespeak serve` flags). `token`: None = no authentication."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_mb: float = 20.0
    max_seconds: float = 120.0
    token: str | None = None
    batch_window_ms: float = 10.0
    max_batch: int = 16

    def __post_init__(self) -> None:
        if self.max_upload_mb <= 0 or self.max_seconds <= 0:
            raise UsageError("--max-upload-mb and --max-seconds must be positive")
        if self.token is not None and not self.token.strip():
            raise UsageError("the token must not be empty")

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def page_html() -> str:
    """The self-contained page (package data `safespeak/serve/static/index.html`)."""
    return files("safespeak.serve").joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(detector: Detector, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI app around one loaded `Detector`."""
    cfg = settings or ServeSettings()
    scorer = BatchingScorer(detector, max_items=cfg.max_batch, window_s=cfg.batch_window_ms / 1000)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await scorer.start()
        yield
        await scorer.stop()

    app = FastAPI(
        title="safespeak", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Voice anti-spoofing detector: POST an audio file, get a bona fide score and verdict.",
    )  # fmt: skip
    app.state.scorer = scorer

    @app.exception_handler(UploadError)
    async def _refused(_request: Request, exc: UploadError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        # a refusal before the body was read: close the connection rather than drain an unwanted upload
        if exc.status == 413:
            headers = {"Connection": "close"}
        return JSONResponse({"error": exc.message, "status": exc.status}, exc.status, headers=headers)

    @app.exception_handler(Exception)
    async def _crashed(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error while serving a request")
        return JSONResponse({"error": f"internal error ({type(exc).__name__})", "status": 500}, 500)

    def authorised(request: Request) -> None:
        if cfg.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), cfg.token.encode()):
            raise UploadError(401, "missing or wrong token: send 'Authorization: Bearer TOKEN'")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html(), headers=_PAGE_HEADERS)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        s = scorer.stats
        return {
            "status": "ok", "token_required": cfg.token is not None, "requests_scored": s.requests,
            "batches": s.batches, "largest_batch": s.largest_batch,
        }  # fmt: skip

    @app.get("/v1/model", dependencies=[Depends(authorised)])
    async def model() -> dict[str, Any]:
        return {
            **detector.card.to_dict(), "max_upload_mb": cfg.max_upload_mb, "max_seconds": cfg.max_seconds,
            "safespeak_version": __version__,
        }  # fmt: skip

    @app.post("/v1/detect", dependencies=[Depends(authorised)])
    async def detect(request: Request) -> dict[str, Any]:
        upload = await read_upload(dict(request.headers), request.stream(), max_bytes=cfg.max_bytes)
        x = await asyncio.to_thread(decode_upload, upload, cfg.max_seconds)  # (T,) 16 kHz
        result = await scorer.score(x, upload.name)
        return result.to_dict()

    return app


def run(detector: Detector, settings: ServeSettings) -> None:
    """Serve until interrupted (uvicorn, one process: the model is loaded once)."""
    import uvicorn

    uvicorn.run(
        create_app(detector, settings), host=settings.host, port=settings.port, log_level="info",
        access_log=False, server_header=False,
    )  # fmt: skip
