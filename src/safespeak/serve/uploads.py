"""Uploads read from the request stream into memory, with the size limit enforced while reading.

A `Content-Length` over the limit is refused before one body byte is read; a body without one (chunked)
is counted as it arrives and refused as soon as it passes the limit. The multipart form is parsed
incrementally (python-multipart's push parser) into a `bytes` object: nothing is written to disk, and the
client's file name is only echoed back (sanitised), never used as a path.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

__all__ = ["Upload", "UploadError", "decode_upload", "read_upload"]

from python_multipart.multipart import MultipartParser, parse_options_header  # python-multipart >= 0.0.13


class UploadError(Exception):
    """A request the server refuses: HTTP `status` and a one-line `message` for the JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Upload:
    """The `file` part of a multipart form: display name (sanitised), declared type, content."""

    name: str
    content_type: str | None
    data: bytes


def display_name(raw: str | None) -> str:
    """The last path component of a client file name, printable and at most 120 characters."""
    base = re.split(r"[\\/]", raw or "")[-1]
    clean = "".join(c for c in base if c.isprintable()).strip()
    return clean[:120] or "upload"


class _FileField:
    """Push-parser callbacks that keep the first part named `field` (headers, then its bytes)."""

    def __init__(self, field: str) -> None:
        self.field = field.encode()
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.in_target = False
        self.found: tuple[str, str | None] | None = None
        self.data = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.headers.clear()

    def _header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.in_target = self.found is None and params.get(b"name") == self.field
        if self.in_target:
            filename = params.get(b"filename", b"").decode("utf-8", "replace")
            ctype = self.headers.get(b"content-type")
            self.found = (display_name(filename), ctype.decode("latin-1") if ctype else None)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_target:
            self.data.extend(data[start:end])

    def _part_end(self) -> None:
        self.in_target = False


async def read_upload(
    headers: dict[str, str], stream: AsyncIterator[bytes], *, max_bytes: int, field: str = "file"
) -> Upload:
    """Read a multipart body from `stream`; `UploadError` 413 / 415 / 422 / 400 when it cannot be used."""
    mime, params = parse_options_header(headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise UploadError(415, f"send the audio as multipart/form-data with a '{field}' field")
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise UploadError(400, "invalid Content-Length header")
        if int(length) > max_bytes:
            raise UploadError(413, _too_large(max_bytes))
    form = _FileField(field)
    parser = MultipartParser(boundary, form.callbacks())
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > max_bytes:  # a body longer than it said, or chunked without a length
                raise UploadError(413, _too_large(max_bytes))
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except Exception as exc:  # python-multipart raises its own errors for malformed bodies
        raise UploadError(400, f"malformed multipart body ({type(exc).__name__})") from None
    if form.found is None:
        raise UploadError(422, f"the form has no '{field}' field (multipart field name must be '{field}')")
    name, ctype = form.found
    if not form.data:
        raise UploadError(422, f"{name}: the uploaded file is empty (0 bytes)")
    return Upload(name, ctype, bytes(form.data))


def _too_large(max_bytes: int) -> str:
    return f"upload larger than this server's limit of {max_bytes / 2**20:g} MiB (--max-upload-mb)"


def decode_upload(upload: Upload, max_seconds: float) -> np.ndarray:
    """Decode an upload in memory to 16 kHz mono; 415 when it is not audio, 422 when too long or unusable.

    The duration is read from the header before any sample is decoded.
    """
    import soundfile as sf

    from safespeak.audio import AudioError, decode_audio

    try:
        info = sf.info(io.BytesIO(upload.data))
    except Exception:  # libsndfile's errors for non-audio data vary by version
        raise UploadError(
            415, f"{upload.name}: not a readable audio file (send WAV, FLAC, OGG or another format "
            "libsndfile reads)",
        ) from None  # fmt: skip
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds > max_seconds:
        limit = f"this server accepts at most {max_seconds:g} s (--max-seconds)"
        raise UploadError(422, f"{upload.name}: audio is {seconds:.1f} s long; {limit}")
    try:
        return decode_audio(upload.data, upload.name)
    except AudioError as exc:
        raise UploadError(422, str(exc)) from None
