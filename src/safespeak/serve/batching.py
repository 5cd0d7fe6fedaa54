"""Requests batched on one model: an asyncio queue drained by one worker, scoring in a thread.

Each request puts (waveform, future) on the queue. The worker takes the first job, waits `window_s` for
more to arrive (at most `max_items` in all), and scores them with one `Detector.score_batch` call in a
worker thread, so the event loop keeps accepting and reading uploads meanwhile. Only this worker touches
the model: one instance, no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import numpy as np

from safespeak.inference import DetectionResult, Detector

__all__ = ["BatchStats", "BatchingScorer"]


@dataclass
class _Job:
    x: np.ndarray  # (T,) 16 kHz
    name: str
    future: asyncio.Future


@dataclass
class BatchStats:
    """Counters served by `/healthz` (how well concurrent requests are being batched)."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    sizes: dict[int, int] = field(default_factory=dict)


class BatchingScorer:
    """`await scorer.score(x, name)` from any number of concurrent requests; `start()` / `stop()` once."""

    def __init__(self, detector: Detector, *, max_items: int = 16, window_s: float = 0.01) -> None:
        self.detector = detector
        self.max_items = max(1, int(max_items))
        self.window_s = max(0.0, float(window_s))
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._worker(), name="safespeak-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def score(self, x: np.ndarray, name: str) -> DetectionResult:
        if self._queue is None:
            raise RuntimeError("BatchingScorer.start() was not called")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(x, name, future))
        return await future

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        jobs = [await self._queue.get()]
        self._drain(jobs)
        if len(jobs) < self.max_items and self.window_s > 0:
            await asyncio.sleep(self.window_s)  # the collection window: let concurrent requests join
            self._drain(jobs)
        return [j for j in jobs if not j.future.done()]  # a client that went away was cancelled

    def _drain(self, jobs: list[_Job]) -> None:
        assert self._queue is not None
        while len(jobs) < self.max_items and not self._queue.empty():
            jobs.append(self._queue.get_nowait())

    async def _worker(self) -> None:
        while True:
            jobs = await self._collect()
            if not jobs:
                continue
            try:
                results = await asyncio.to_thread(
                    self.detector.score_batch, [j.x for j in jobs], [j.name for j in jobs]
                )
            except Exception as exc:  # the requests get the error; the worker keeps serving
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            s = self.stats
            s.requests += len(jobs)
            s.batches += 1
            s.largest_batch = max(s.largest_batch, len(jobs))
            s.sizes[len(jobs)] = s.sizes.get(len(jobs), 0) + 1
            for j, r in zip(jobs, results, strict=True):
                if not j.future.done():
                    j.future.set_result(r)
