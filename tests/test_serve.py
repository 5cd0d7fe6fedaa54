"""`safespeak serve` as a subprocess on 127.0.0.1: concurrency, the score workflow's scores, refusals."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serve_helpers import running_server, tiny_checkpoint, write_clips  # noqa: E402

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT_MB = 0.25  # 256 KiB: every clip fits, the oversized body does not
MAX_SECONDS = 4.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("serve")
    ckpt = tiny_checkpoint(root / "model", dev_eer_threshold=0.0)
    clips = write_clips(root / "clips")
    from safespeak.cli import main

    out = root / "scores.csv"
    args = ["score", "--checkpoint", str(ckpt), "--input", str(root / "clips"), "--output", str(out)]
    assert main(args) == 0
    with open(out) as fh:
        expected = {f"{row['ID']}.wav": float(row["score"]) for row in csv.DictReader(fh)}
    assert len(expected) == len(clips)
    return {"root": root, "ckpt": ckpt, "clips": clips, "expected": expected}


@pytest.fixture(scope="module")
def server(setup: dict) -> Iterator[tuple[str, subprocess.Popen]]:
    extra = ("--token", TOKEN, "--max-upload-mb", str(LIMIT_MB), "--max-seconds", str(MAX_SECONDS))
    with running_server(setup["ckpt"], *extra, log=setup["root"] / "server.log") as running:
        yield running


def write_wav_bytes(seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * 16_000), dtype=np.float32) + 0.01, 16_000, format="WAV")
    return buf.getvalue()


def _post(url: str, name: str, data: bytes, headers: dict | None = None) -> httpx.Response:
    files = {"file": (name, data, "audio/wav")}
    headers = AUTH if headers is None else headers
    return httpx.post(url + "/v1/detect", files=files, headers=headers, timeout=60)


def test_twenty_concurrent_clients_get_the_score_workflow_scores(setup: dict, server: tuple) -> None:
    url, _ = server
    clips = [(p.name, p.read_bytes()) for p in setup["clips"]]

    async def client(k: int, http: httpx.AsyncClient) -> list[tuple[str, httpx.Response]]:
        out = []
        for j in range(3):  # three uploads in a row, each client starting at another clip
            name, data = clips[(k + j) % len(clips)]
            files = {"file": (name, data, "audio/wav")}
            resp = await http.post(url + "/v1/detect", files=files, headers=AUTH)
            out.append((name, resp))
        return out

    async def run_all() -> list[tuple[str, httpx.Response]]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            per_client = await asyncio.gather(*(client(k, http) for k in range(20)))
        return [r for rs in per_client for r in rs]

    answers = asyncio.run(run_all())
    assert len(answers) == 60
    refused = [r.text for _, r in answers if r.status_code != 200]
    assert not refused, refused
    for name, resp in answers:
        body = resp.json()
        assert body["name"] == name
        assert body["score"] == pytest.approx(setup["expected"][name], abs=1e-5), name
        assert body["label"] == ("bonafide" if body["score"] >= 0.0 else "spoof")
        assert body["threshold_source"] == "dev-eer"
        seconds = sf.info(setup["root"] / "clips" / name).duration
        assert len(body["windows"]) == max(1, int(np.ceil(seconds / 0.5 - 1e-9)))
        assert body["windows"][-1]["end_s"] == pytest.approx(seconds, abs=1e-6)
    health = httpx.get(url + "/healthz", timeout=60).json()
    assert health["requests_scored"] >= 60
    assert health["largest_batch"] > 1, "concurrent requests were never batched together"
    assert health["batches"] < health["requests_scored"]


def test_a_text_file_named_wav_is_a_json_415(server: tuple) -> None:
    resp = _post(server[0], "notes.wav", b"these are meeting notes, not audio\n" * 20)
    assert resp.status_code == 415
    assert "notes.wav: not a readable audio file" in resp.json()["error"]


def test_empty_and_too_long_audio_are_json_422(server: tuple, tmp_path: Path) -> None:
    empty = _post(server[0], "empty.wav", b"")
    assert empty.status_code == 422 and "empty" in empty.json()["error"]
    long_clip = write_clips(tmp_path, (MAX_SECONDS + 1.0,))[0]  # fits the byte limit, not the duration limit
    long = _post(server[0], "long.wav", long_clip.read_bytes())
    assert long.status_code == 422
    assert "5.0 s long" in long.json()["error"] and f"at most {MAX_SECONDS:g} s" in long.json()["error"]
    no_field = httpx.post(
        server[0] + "/v1/detect", files={"audio": ("a.wav", b"x")}, headers=AUTH, timeout=60
    )
    assert no_field.status_code == 422 and "'file'" in no_field.json()["error"]
    raw = httpx.post(server[0] + "/v1/detect", content=b"RIFF....", headers=AUTH, timeout=60)
    assert raw.status_code == 415 and "multipart/form-data" in raw.json()["error"]


def _raw_request(url: str, head: bytes, body_parts: list[bytes]) -> tuple[int, dict]:
    """Send a request from a plain socket, stop (the body may be unfinished), return (status, JSON body).

    The server must answer without waiting for the rest: with an unfinished body `recv` would time out.
    """
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while b"}" not in answer:  # the JSON error body ends the response
            data = sock.recv(65_536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_over_the_upload_limit_is_413_before_or_while_reading(server: tuple) -> None:
    limit = int(LIMIT_MB * 2**20)
    b = "safespeakboundary"
    first = f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'.encode()
    start = (
        f"POST /v1/detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: multipart/form-data; boundary={b}\r\n"
    )

    # a declared length over the limit: refused from the headers, no body byte sent or read
    status, body = _raw_request(server[0], f"{start}Content-Length: {limit + 1}\r\n\r\n".encode(), [])
    assert status == 413 and "limit" in body["error"]

    # chunked, no length: counted as it streams in; the last part sent crosses the limit, then the client
    # stops mid-body (no closing boundary, no final chunk)
    parts = [b"%x\r\n%s\r\n" % (len(first), first)]
    parts += [b"8000\r\n" + b"\0" * 32_768 + b"\r\n"] * (limit // 32_768)  # len(first) + limit bytes in all
    status, body = _raw_request(server[0], f"{start}Transfer-Encoding: chunked\r\n\r\n".encode(), parts)
    assert status == 413 and body["status"] == 413

    ok = _post(server[0], "small.wav", write_wav_bytes(0.5))  # the same limits let a normal upload in
    assert ok.status_code == 200


def test_missing_or_wrong_token_is_401(server: tuple, setup: dict) -> None:
    data = setup["clips"][0].read_bytes()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        resp = _post(server[0], "a.wav", data, headers=headers)
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
        assert "token" in resp.json()["error"]
        assert httpx.get(server[0] + "/v1/model", headers=headers, timeout=60).status_code == 401
    model = httpx.get(server[0] + "/v1/model", headers=AUTH, timeout=60).json()
    assert model["arch"] == "aasist" and model["window_samples"] == 8_000 and model["calibrated"] is False
    assert model["threshold_source"] == "dev-eer" and len(model["checkpoint_sha256"]) == 64


def test_healthz_and_the_page_answer(server: tuple) -> None:
    health = httpx.get(server[0] + "/healthz", timeout=60)
    assert health.status_code == 200 and health.json()["token_required"] is True
    page = httpx.get(server[0] + "/", timeout=60)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    for element in ('id="file"', 'id="drop"', 'id="record"', 'id="token"', 'id="verdict"', 'id="timeline"'):
        assert element in html
    assert 'src="http' not in html and 'href="http' not in html and "@import" not in html  # no CDN


def test_the_server_survived_everything(server: tuple) -> None:
    url, proc = server
    assert proc.poll() is None
    assert httpx.get(url + "/healthz", timeout=60).status_code == 200
