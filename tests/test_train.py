"""Trainer: 2 epochs of the tiny recipe, checkpoints + state, SWA, early stopping, leakage guard, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from safespeak.checkpoint import load_checkpoint
from safespeak.cli import main
from safespeak.config import config_from_dict, dump_config, load_config
from safespeak.data import DataLeakageError, load_split, trials_fingerprint
from safespeak.train import STATE_FILE, lr_factor, train
from toydata import ToySSL, toy_config, write_toy_dataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy"), {"train": 24, "dev": 12}, seed=1)


def _paths(toy) -> list[str]:
    return [
        f"data.{s}.{k}={v}"
        for s in ("train", "dev")
        for k, v in (("protocol", toy.protocols[s]), ("audio_dir", toy.audio_dirs[s]))
    ]


def test_lr_schedules() -> None:
    assert lr_factor(0, 100, "cosine", 0.05) == pytest.approx(1.0)
    assert lr_factor(50, 100, "cosine", 0.05) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(100, 100, "cosine", 0.05) == pytest.approx(0.05)
    assert lr_factor(37, 100, "constant", 0.05) == 1.0


def test_tiny_recipe_trains_two_epochs_and_computes_dev_eer(tmp_path: Path) -> None:
    toy = write_toy_dataset(tmp_path / "toy", {"train": 8, "dev": 6}, seed=2)  # 2 steps per epoch
    cfg = load_config(
        CONFIGS / "tiny-cpu.yaml",
        [*_paths(toy), f"train.out_dir={tmp_path / 'run'}", "train.tensorboard=true", "data.batch_size=4"],
    )
    res = train(cfg)
    assert res.epochs_run == 2 and [h["epoch"] for h in res.history] == [0, 1]
    eers = [h["dev_eer"] for h in res.history]
    assert all(0.0 <= e <= 1.0 for e in eers) and res.best_dev_eer == min(eers)
    assert all(math.isfinite(h["train_loss"]) and h["train_loss"] > 0 for h in res.history)
    model, meta = load_checkpoint(tmp_path / "run" / "model")
    assert meta["arch"] == "aasist-l" and meta["model_config"]["gat_dims"] == [16, 8]
    assert meta["epoch"] == res.best_epoch and meta["dev_metrics"]["eer"] == pytest.approx(res.best_dev_eer)
    assert meta.train_window == 8000 and meta["training_config"]["train"]["lr"] == 1e-3
    # the dev-EER threshold of the best epoch is what `detect` labels with (no calibration yet)
    best = next(r for r in res.history if r["epoch"] == res.best_epoch)
    assert meta.threshold == pytest.approx(best["dev_eer_threshold"]) and meta.calibration is None
    splits = [
        load_split(str(toy.protocols[s]), toy.format, audio_dir=str(toy.audio_dirs[s]))
        for s in ("train", "dev")
    ]
    assert meta["data_fingerprint"] == trials_fingerprint(*splits)
    state = torch.load(tmp_path / "run" / STATE_FILE, weights_only=True)  # no pickled objects
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (2, 0, 4)
    # the cosine schedule reached its floor on the last step
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        1e-3 * lr_factor(3, 4, "cosine", 0.1), rel=1e-6
    )
    assert list((tmp_path / "run" / "tb").iterdir()), "tensorboard scalars written"
    assert json.loads((tmp_path / "run" / "result.json").read_text())["best_epoch"] == res.best_epoch
    with torch.no_grad():
        assert model.score(torch.zeros(2, 8000)).shape == (2,)


def test_swa_is_applied_to_the_final_weights(toy, tmp_path: Path) -> None:
    cfg = config_from_dict(toy_config(toy, tmp_path, epochs=2, swa=True, patience=None))
    res = train(cfg)
    # toy data: epoch 0 already separates dev perfectly, so `best` holds the epoch-0 weights
    assert res.best_epoch == 0
    w0 = load_file(tmp_path / "best.safetensors")
    w1 = torch.load(tmp_path / STATE_FILE, weights_only=True)["model"]
    last = load_file(tmp_path / "last.safetensors")
    for k in w0:
        torch.testing.assert_close(last[k], (w0[k] + w1[k]) / 2, rtol=0, atol=1e-6)
    assert not torch.equal(last["fc.weight"], w1["fc.weight"])
    assert load_file(tmp_path / "model.safetensors").keys() == last.keys()


def test_early_stopping_after_patience(toy, tmp_path: Path) -> None:
    res = train(config_from_dict(toy_config(toy, tmp_path, epochs=6, patience=1)))
    # dev EER is 0 after epoch 0 and cannot improve, so epoch 1 exhausts a patience of 1
    assert (res.stopped_early, res.epochs_run, res.best_epoch) == (True, 2, 0)


def test_leakage_guard_refuses_to_start_unless_allowed(toy, tmp_path: Path) -> None:
    raw = toy_config(toy, tmp_path / "a", epochs=1)
    raw["data"]["dev"] = raw["data"]["train"]
    with pytest.raises(DataLeakageError, match=r"24 shared trial ids \(e\.g\. TOY_T_00000"):
        train(config_from_dict(raw))
    assert not (tmp_path / "a").exists()
    raw["data"]["allow_overlap"] = True
    assert train(config_from_dict(raw)).epochs_run == 1
    spoof_only = tmp_path / "spoof.txt"
    spoof_only.write_text(
        "".join(ln + "\n" for ln in toy.protocols["dev"].read_text().splitlines() if "spoof" in ln)
    )
    raw["data"]["dev"] = {"protocol": str(spoof_only), "audio_dir": str(toy.audio_dirs["dev"])}
    raw["train"]["out_dir"] = str(tmp_path / "b")
    with pytest.raises(ValueError, match=r"spoof\.txt: the dev EER needs both bona fide and spoof"):
        train(config_from_dict(raw))


def test_cli_reports_config_and_leakage_errors(toy, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epohcs: 2\n")
    assert main(["train", str(recipe)]) == 2
    assert "r.yaml:2: train.epohcs: unknown key; did you mean 'epochs'" in capsys.readouterr().err
    recipe.write_text("train:\n  epochs: 2\n")
    assert main(["train", str(recipe)]) == 2
    assert "data.train.protocol: a protocol file is required" in capsys.readouterr().err
    assert main(["train", str(recipe), "--resume", str(tmp_path)]) == 2
    assert "--resume reuses RUN_DIR/config.yaml" in capsys.readouterr().err
    leaky = [
        *_paths(toy)[:2],
        f"data.dev.protocol={toy.protocols['train']}",
        f"data.dev.audio_dir={toy.audio_dirs['train']}",
        f"train.out_dir={tmp_path / 'r'}",
        "train.epochs=1",
    ]
    args = ["train", str(CONFIGS / "tiny-cpu.yaml"), *(x for s in leaky for x in ("--set", s))]
    assert main(args) == 2
    assert "train and dev overlap" in capsys.readouterr().err


def test_ssl_param_group_gets_its_own_lr(toy, tmp_path: Path) -> None:
    res = train(
        config_from_dict(
            {**toy_config(toy, tmp_path, epochs=1, ssl_lr=0.0), "model": {"arch": "test-toy-ssl"}}
        )
    )
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert [g["initial_lr"] for g in state["optimizer"]["param_groups"]] == [3e-3, 0.0]
    torch.manual_seed(3)  # the trainer seeds with train.seed before building the model
    fresh = ToySSL().state_dict()
    torch.testing.assert_close(state["model"]["conv1.weight"], fresh["conv1.weight"], rtol=0, atol=0)
    assert not torch.equal(state["model"]["fc.weight"], fresh["fc.weight"]) and res.epochs_run == 1


def test_bf16_autocast_and_grad_clip_train(toy, tmp_path: Path) -> None:
    res = train(config_from_dict(toy_config(toy, tmp_path, epochs=1, precision="bf16", grad_clip=0.5)))
    assert math.isfinite(res.history[0]["train_loss"]) and 0.0 <= res.history[0]["dev_eer"] <= 1.0


def test_resume_guards_and_edge_cases(toy, tmp_path: Path) -> None:
    cfg = config_from_dict(toy_config(toy, tmp_path, epochs=1))
    (tmp_path / "config.yaml").write_text(dump_config(cfg))  # killed before its first state save
    first = train(cfg, resume=True)  # starts from scratch
    assert first.epochs_run == 1 and (tmp_path / STATE_FILE).exists()
    with pytest.raises(FileExistsError, match="continue with --resume"):
        train(cfg)
    changed = config_from_dict(toy_config(toy, tmp_path, epochs=1, lr=1e-2))
    with pytest.raises(ValueError, match=r"config.yaml: the resumed config differs in train.lr"):
        train(changed, resume=True)
    again = train(cfg, resume=True)  # a finished run: nothing left to train, same result
    assert again.history == first.history and again.best_epoch == first.best_epoch


def test_train_command_help_documents_every_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--set KEY=VALUE", "--resume RUN_DIR", "--allow-leakage", "YAML recipe"):
        assert opt in text


def test_max_minutes_stops_before_an_epoch_that_would_overrun(
    toy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a fake clock at 60 s per epoch, a 2.5-minute budget allows exactly 2 of 5 epochs."""
    import safespeak.train as train_mod

    clock = {"now": 0.0}
    orig_end_epoch = train_mod._Run.end_epoch

    def end_epoch(self: train_mod._Run, epoch: int) -> None:
        clock["now"] += 60.0
        orig_end_epoch(self, epoch)

    monkeypatch.setattr(train_mod.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(train_mod._Run, "end_epoch", end_epoch)
    res = train(config_from_dict(toy_config(toy, tmp_path, epochs=5, max_minutes=2.5)))
    assert (res.epochs_run, res.stopped_early) == (2, True)


def test_dev_eer_is_what_score_and_evaluate_give_for_the_checkpoint(tmp_path: Path) -> None:
    from safespeak.evaluate import evaluate
    from safespeak.score import score_to_files

    toy = write_toy_dataset(tmp_path / "toy", {"train": 8, "dev": 6}, seed=4)
    cfg = load_config(
        CONFIGS / "tiny-cpu.yaml",
        [*_paths(toy), f"train.out_dir={tmp_path / 'run'}", "train.epochs=1", "data.batch_size=4"],
    )
    res = train(cfg)
    # one owner for the window: `score` with the checkpoint alone picks the training crop, full length
    run = score_to_files(
        tmp_path / "run" / "last", toy.protocols["dev"], tmp_path / "dev.csv", protocol_format=toy.format,
        audio_dir=toy.audio_dirs["dev"], progress=False,
    )  # fmt: skip
    card = json.loads(run.card.read_text())
    assert (card["window_samples"], card["window_source"], card["crop"]) == (8000, "checkpoint", "full")
    ev = evaluate(run.output, toy.protocols["dev"], toy.format)
    assert ev.eer == pytest.approx(res.history[0]["dev_eer"], abs=1e-9)
    assert ev.eer_threshold == pytest.approx(res.history[0]["dev_eer_threshold"], abs=1e-4)
