"""Scoring: windows, batching across files, error reports, ids as strings, CLI, polarity of every arch."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from safespeak.checkpoint import save_checkpoint
from safespeak.cli import main
from safespeak.score import ScoreItem, ScoreOptions, collect_inputs, score_items
from scoring_helpers import MeanModel, write_wav


def _read_csv(path: Path) -> dict[str, str]:
    with open(path) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["ID", "score"]
    return {r[0]: r[1] for r in rows[1:]}


def test_full_crop_averages_windows_and_first_crop_uses_first_window(tmp_path: Path) -> None:
    # 4,000 samples = windows [0:1600], [1600:3200] and the end-aligned [2400:4000]
    x = np.concatenate([np.full(1600, 0.1), np.full(1600, 0.3), np.full(800, -0.2)]).astype(np.float32)
    f = write_wav(tmp_path / "a.wav", x)
    model = MeanModel()
    full = score_items(model, [ScoreItem("a", str(f))], ScoreOptions(crop="full"), progress=False)
    first = score_items(model, [ScoreItem("a", str(f))], ScoreOptions(crop="first"), progress=False)
    expected_full = np.mean([0.1, 0.3, (800 * 0.3 + 800 * -0.2) / 1600])
    assert full.scores["a"] == pytest.approx(expected_full, abs=1e-6)
    assert full.n_windows == 3
    assert first.scores["a"] == pytest.approx(0.1, abs=1e-6)


def test_short_file_is_repeat_padded_and_batch_size_does_not_change_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = []
    for i, n in enumerate([500, 1600, 5000, 7777, 12000]):
        items.append(ScoreItem(f"f{i}", str(write_wav(tmp_path / f"f{i}.wav", 0.1 * rng.standard_normal(n)))))
    model = MeanModel(w=3.0, b=0.5)
    a = score_items(model, items, ScoreOptions(batch_size=1), progress=False).scores
    b = score_items(model, items, ScoreOptions(batch_size=7), progress=False).scores
    assert a.keys() == b.keys() == {i.trial_id for i in items}
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-6)
    short = np.tile(np.asarray(_load(tmp_path / "f0.wav")), 4)[:1600]
    assert a["f0"] == pytest.approx(3.0 * short.mean() + 0.5, abs=1e-5)


def _load(p: Path) -> np.ndarray:
    from safespeak.audio import load_audio

    return load_audio(p)


def test_sigmoid_option_keeps_order(tmp_path: Path) -> None:
    items = [
        ScoreItem(f"{i}", str(write_wav(tmp_path / f"{i}.wav", np.full(1600, v))))
        for i, v in enumerate([-0.5, 0.0, 0.4])
    ]
    raw = score_items(MeanModel(w=4.0), items, ScoreOptions(), progress=False).scores
    sig = score_items(MeanModel(w=4.0), items, ScoreOptions(sigmoid=True), progress=False).scores
    for k in raw:
        assert sig[k] == pytest.approx(1 / (1 + np.exp(-raw[k])), abs=1e-6)


@pytest.fixture()
def broken_dir(tmp_path: Path) -> Path:
    d = tmp_path / "audio"
    rng = np.random.default_rng(1)
    for name in ["010", "002", "1e5", "b", "a"]:  # ids that break when parsed as numbers
        write_wav(d / f"{name}.flac", 0.1 * rng.standard_normal(3000))
    (d / "empty.wav").write_bytes(b"")
    (d / "garbage.flac").write_bytes(b"this is not audio" * 50)
    bad = 0.1 * rng.standard_normal(2000)
    bad[100] = np.nan
    write_wav(d / "nan.wav", bad)
    return d


def test_score_cli_writes_all_good_files_and_reports_broken_ones(
    broken_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_checkpoint(ckpt, MeanModel(w=2.0), arch="test-mean", model_config={"w": 2.0})
    out = tmp_path / "scores.csv"
    rc = main(["score", "--checkpoint", str(ckpt), "--input", str(broken_dir), "--output", str(out)])
    assert rc == 0
    rows = _read_csv(out)
    assert list(rows) == sorted(["010", "002", "1e5", "b", "a"])  # sorted, ids kept as strings
    errors = list(csv.DictReader(open(tmp_path / "scores.errors.csv")))
    assert sorted(e["ID"] for e in errors) == ["empty", "garbage", "nan"]
    reasons = {e["ID"]: e["error"] for e in errors}
    assert "empty" in reasons["empty"] and "NaN" in reasons["nan"]
    card = json.loads((tmp_path / "scores.card.json").read_text())
    assert (card["n_inputs"], card["n_scored"], card["n_failed"]) == (8, 5, 3)
    assert card["arch"] == "test-mean" and card["crop"] == "full" and card["sample_rate"] == 16000
    assert len(card["checkpoint_sha256"]) == 64
    assert "3 file(s) could not be scored" in capsys.readouterr().err
    rc = main(
        ["score", "--checkpoint", str(ckpt), "--input", str(broken_dir), "--output", str(out), "--strict"]
    )
    assert rc == 1


def test_list_file_inputs_and_errors(tmp_path: Path) -> None:
    a = write_wav(tmp_path / "x" / "a.wav", np.zeros(100))
    lst = tmp_path / "list.txt"
    lst.write_text(f"# comment\n\nutt1 {a}\nx/a.wav\n")
    items = collect_inputs(lst)
    assert [(i.trial_id, Path(i.path).resolve()) for i in items] == [
        ("utt1", a.resolve()),
        ("a", a.resolve()),
    ]
    lst.write_text("a b c\n")
    with pytest.raises(ValueError, match=r"list.txt:1"):
        collect_inputs(lst)


def test_directory_ids_are_relative_paths_matching_the_folder_protocol(tmp_path: Path) -> None:
    write_wav(tmp_path / "d1" / "a.wav", np.zeros(10))
    write_wav(tmp_path / "d2" / "a.wav", np.zeros(10))
    assert sorted(i.trial_id for i in collect_inputs(tmp_path)) == ["d1/a", "d2/a"]


def test_scoring_a_folder_dataset_evaluates_against_the_folder_protocol(tmp_path: Path) -> None:
    from safespeak.evaluate import evaluate
    from safespeak.score import write_scores_csv

    root = tmp_path / "data"
    for i in range(4):
        write_wav(root / "bonafide" / f"b{i}.wav", np.full(1600, 0.1 + 0.01 * i))
        write_wav(root / "spoof" / "A01" / f"s{i}.wav", np.full(1600, -0.1 - 0.01 * i))
    res = score_items(MeanModel(), collect_inputs(root), progress=False)
    write_scores_csv(tmp_path / "s.csv", res.scores)
    ev = evaluate(tmp_path / "s.csv", root, "folder")
    assert (ev["n_bonafide"], ev["n_spoof"], ev["eer"]) == (4, 4, 0.0)


def test_detect_prints_label_and_calibrated_probability(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "m"
    save_checkpoint(
        ckpt,
        MeanModel(w=10.0),
        arch="test-mean",
        model_config={"w": 10.0},
        meta={"calibration": {"scale": 2.0, "offset": -1.0, "prior": 0.5}},
    )
    hi = write_wav(tmp_path / "hi.wav", np.full(1600, 0.2))  # score 2.0 -> llr 3.0
    lo = write_wav(tmp_path / "lo.wav", np.full(1600, 0.0))  # score 0.0 -> llr -1.0
    rc = main(["detect", str(hi), str(lo), "--checkpoint", str(ckpt), "--json"])
    assert rc == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in recs] == ["bonafide", "spoof"]
    assert recs[0]["llr"] == pytest.approx(3.0, abs=1e-5)
    assert recs[1]["p_bonafide"] == pytest.approx(1 / (1 + np.exp(1.0)), abs=1e-5)


def _registered_archs() -> list[str]:
    from safespeak.models import list_models

    return [n for n in list_models() if not n.startswith("test-")]


@pytest.mark.parametrize("arch", _registered_archs())
def test_polarity_of_every_registered_arch(arch: str) -> None:
    """Raising a model's bona fide training target must raise its score (higher = bona fide)."""
    from safespeak.models import build

    torch.manual_seed(0)
    try:
        model = build(arch).eval()
    except (TypeError, ValueError) as exc:  # archs that need a backbone source are covered by their own tests
        pytest.skip(f"{arch} needs build arguments: {exc}")
    if arch.endswith("-head"):  # (B, frames, dim) features, or (B, layers, frames, dim) for all-layer heads
        dim = getattr(model, "in_dim", None) or getattr(getattr(model, "key_proj", None), "in_features", 1024)
        layers = getattr(model, "num_layers", None)
        out = model(torch.randn(2, layers, 40, dim) if layers else torch.randn(2, 40, dim))
    else:
        out = model(model.preprocess(0.1 * torch.randn(2, 16000)))
    out = out.detach().requires_grad_(True)
    log_p_bona = torch.log_softmax(model.logits2(out), dim=1)[:, 1].sum()
    (g_target,) = torch.autograd.grad(log_p_bona, out)
    (g_score,) = torch.autograd.grad(model.bonafide_score(out).sum(), out)
    assert (g_target * g_score).flatten(1).sum(1).gt(0).all()
