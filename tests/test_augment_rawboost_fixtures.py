"""RawBoost against the recorded original (TakHemlata RawBoost.py): filter design and algos 1–8 replayed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import require_shared
from safespeak.augment.filters import band_edges, firwin_bandstop, notch_cascade
from safespeak.augment.rawboost import (
    ISDDraw,
    NotchDraw,
    RawBoostParams,
    SSIDraw,
    isd_apply,
    lnl_apply,
    ssi_apply,
)
from safespeak.augment.rawboost_numpy import rawboost_numpy

P = RawBoostParams()


@pytest.fixture(scope="module")
def ref() -> tuple[dict, dict[str, np.ndarray]]:
    folder = require_shared("fixtures", "reference")
    meta = json.loads((folder / "rawboost_params.json").read_text())
    with np.load(folder / "rawboost_io.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return meta, arrays


def _arr(arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
    assert key.startswith("npz:"), key
    return arrays[key[4:].split(" ")[0]]


def _notch(filters: list[dict]) -> NotchDraw:
    """Recorded filters → a batch-of-1 NotchDraw (1, F, nb)."""
    def get(name: str, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor([[[b[name] for b in f["bands"]] for f in filters]], dtype=dtype)

    gain = torch.tensor([[f["G"] for f in filters]], dtype=torch.float64)
    return NotchDraw(
        fc=get("fc", torch.float64), bw=get("bw", torch.float64), numtaps=get("c", torch.int64), gain_db=gain
    )


def _replay(stage: dict, x: torch.Tensor, arrays: dict[str, np.ndarray]) -> torch.Tensor:
    if stage["type"] == "LnL":
        return lnl_apply(x, _notch(stage["filters"]), P)
    if stage["type"] == "ISD":
        pos = torch.from_numpy(_arr(arrays, stage["p"]).astype(np.int64))[None]
        f_r = torch.from_numpy(_arr(arrays, stage["f_r"]))[None]
        return isd_apply(x, ISDDraw(positions=pos, f_r=f_r), P)
    noise = torch.from_numpy(_arr(arrays, stage["noise_raw"]))[None]
    draw = SSIDraw(noise=noise, notch=_notch(stage["filters"]), snr_db=torch.tensor([stage["SNR"]]))
    return ssi_apply(x, draw, P)


def test_firwin_cases_match_scipy_recordings(ref):
    meta, arrays = ref
    for case in meta["firwin_cases"]:
        f1, f2 = (torch.tensor(v, dtype=torch.float64) for v in case["cutoff"])
        h = firwin_bandstop(torch.tensor(case["numtaps"]), f1, f2, case["fs"], max_taps=101)
        want = _arr(arrays, case["key"])
        np.testing.assert_allclose(h[: len(want)].numpy(), want, rtol=0, atol=1e-14)
        assert h[len(want) :].abs().max() == 0


def _all_filters(meta: dict):
    for algo, rec in meta["algos"].items():
        for stage in rec["stages"]:
            for f in stage.get("filters", []):
                yield algo, f


def test_notch_design_matches_every_recorded_filter(ref):
    meta, arrays = ref
    count = 0
    for _, f in _all_filters(meta):
        d = _notch([f])
        edges = torch.tensor([[b["f1"], b["f2"]] for b in f["bands"]], dtype=torch.float64)
        taps = firwin_bandstop(d.numtaps[0, 0], edges[:, 0], edges[:, 1], P.fs, P.max_taps)
        for i, band in enumerate(f["bands"]):
            want = _arr(arrays, band["taps"])
            np.testing.assert_allclose(taps[i, : len(want)].numpy(), want, rtol=1e-12, atol=1e-14)
        b, length = notch_cascade(d.fc, d.bw, d.numtaps, d.gain_db, P.fs, P.max_taps)
        want = _arr(arrays, f["b"])
        assert int(length) == f["len_b"] == len(want)
        np.testing.assert_allclose(b[0, 0, : len(want)].numpy(), want, rtol=1e-10, atol=1e-13)
        count += 1
    assert count == 29  # 5 LnL filters in algos 1, 4, 5, 6, 8 and one SSI filter in 3, 4, 6, 7


def test_band_edges_match_recorded_including_clipped(ref):
    meta, _ = ref
    bands = [b for _, f in _all_filters(meta) for b in f["bands"]]
    fc, bw, f1, f2 = (torch.tensor([b[k] for b in bands], dtype=torch.float64)
                      for k in ("fc", "bw", "f1", "f2"))
    got1, got2 = band_edges(fc, bw, P.fs)
    assert torch.equal(got1, f1) and torch.equal(got2, f2)
    assert (f1 == 0.001).any() and (f2 == P.fs / 2 - 0.001).any()  # both clipping branches are exercised


@pytest.mark.parametrize("algo", range(1, 9))
def test_algorithms_replay_recorded_draws(ref, algo):
    meta, arrays = ref
    rec = meta["algos"][str(algo)]
    x = torch.from_numpy(arrays["x"] if algo <= 3 else arrays["x_short"])[None]
    if algo == 8:  # parallel: both stages see the input, the sum is peak-normalised if > 1
        y = _replay(rec["stages"][0], x, arrays) + _replay(rec["stages"][1], x, arrays)
        peak = y.abs().max()
        y = y / peak if peak > 1 else y
    else:
        y = x
        for stage in rec["stages"]:
            y = _replay(stage, y, arrays)
    want = _arr(arrays, rec["out"])
    assert y.dtype == torch.float32 and y.shape == (1, want.shape[0])
    np.testing.assert_allclose(y[0].numpy(), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("algo", range(1, 9))
def test_numpy_mode_reproduces_original_from_seed(ref, algo):
    meta, arrays = ref
    rec = meta["algos"][str(algo)]
    x = arrays["x"] if algo <= 3 else arrays["x_short"]
    y = rawboost_numpy(x, algo, np.random.RandomState(rec["seed"]))
    want = _arr(arrays, rec["out"])
    assert y.dtype == want.dtype
    np.testing.assert_allclose(y, want, rtol=0, atol=1e-7)
