"""Config loading: shipped recipes, unknown keys with hints and file:line, typed overrides, round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from safespeak.config import (
    ConfigError,
    ExperimentConfig,
    config_diff,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
)
from safespeak.models import build, list_models

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


BASE = """\
name: t
model:
  arch: aasist-l
train:
  lr: 1e-4
  epochs: 3
"""


def test_recipes_are_shipped_for_every_seed_experiment() -> None:
    names = {p.stem for p in CONFIGS}
    assert {
        "aasist-la2019",
        "aasist-l-la2019",
        "semaa-la2021",
        "semaa-la2021-rawboost4",
        "rawformer-se-la2019",
        "ssl-xlsr-aasist-la2019",
        "ssl-xlsr-semaa-la2019",
        "dphubert-last-la2019",
        "dphubert-wsum-la2019",
        "tiny-cpu",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_recipe_loads_and_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.model.arch in list_models()
    assert cfg.data.train.protocol and cfg.data.dev.protocol
    assert cfg.train.loss_weights == (0.1, 0.9)
    if not cfg.model.arch.startswith("ssl-"):  # SSL recipes name a backbone file the user provides
        model = build(cfg.model.arch, **cfg.model.overrides)
        assert cfg.data.crop_samples >= getattr(model, "min_input_length", 0)
    # a dump reloads to the same config (nothing derived is added)
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_recipe_values_match_the_papers() -> None:
    by = {p.stem: load_config(p) for p in CONFIGS}
    a = by["aasist-la2019"].train
    assert (a.lr, a.min_lr, a.scheduler, a.epochs, by["aasist-la2019"].data.batch_size) == (
        1e-4,
        5e-6,
        "cosine",
        100,
        24,
    )
    s = by["ssl-xlsr-aasist-la2019"]
    assert (s.train.scheduler, s.train.lr, s.augment.rawboost_algo) == ("constant", 1e-6, 5)
    assert by["semaa-la2021-rawboost4"].augment.rawboost_algo == 4
    assert by["dphubert-wsum-la2019"].model.overrides["aggregation"] == "weighted-sum"


def test_yaml_floats_follow_yaml_1_2(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE))
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)


def test_unknown_key_names_file_line_and_close_match(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "  weight_decya: 0.1\n")
    with pytest.raises(
        ConfigError, match=rf"{path}:7: train.weight_decya: unknown key; did you mean 'weight_decay'"
    ):
        load_config(path)
    with pytest.raises(ConfigError, match=r":1: modle: unknown key; did you mean 'model'"):
        load_config(_write(tmp_path, "modle: {}\n"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("  swa: 'true'\n", r":7: train.swa: expected bool, got str 'true'"),
        ("  epochs: 2.5\n", r":7: train.epochs: expected int, got float 2.5"),
        (
            "  scheduler: cosin\n",
            r"train.scheduler: 'cosin' is not one of \['cosine', 'constant'\]; did you mean",
        ),
        ("  betas: [0.9]\n", r"train.betas: expected a list of 2 values, got 1"),
        ("  patience: 0\n", r"train.patience: must be >= 1 or null"),
        ("  loss_weights: [0, 0]\n", r"train.loss_weights: must be >= 0, not all zero"),
    ],
)
def test_wrong_values_are_rejected_with_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, BASE + extra))


def test_bad_yaml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"recipe\.yaml: invalid YAML"):
        load_config(_write(tmp_path, "train: [unclosed\n"))
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(_write(tmp_path, "- 1\n"))


def test_overrides_are_parsed_for_the_field_type(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    cfg = load_config(
        path,
        [
            "train.lr=3e-3",
            "train.swa=true",
            "train.grad_clip=1",
            "train.patience=null",
            "data.train.protocol=1234",
            "model.overrides.gat_dims=[16, 8]",
            "train.betas=[0.8, 0.99]",
            "data.dev.audio_dir=x/y",
        ],
    )
    t = cfg.train
    assert (t.lr, t.swa, t.grad_clip, t.patience, t.betas) == (3e-3, True, 1.0, None, (0.8, 0.99))
    assert cfg.data.train.protocol == "1234"  # a str field keeps the text
    assert cfg.model.overrides == {"gat_dims": [16, 8]}
    assert cfg.data.dev.audio_dir == "x/y"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("train.swa=yes", r"--set train.swa=yes: train.swa: expected true or false, got 'yes'"),
        ("train.epochs=2.5", r"train.epochs: expected int, got '2.5'"),
        ("trian.lr=1", r"trian: unknown key; did you mean 'train'"),
        ("train.lr.x=1", r"train.lr is not a section"),
        ("train.lr", r"expected KEY=VALUE"),
        ("train.epochs=0", r"train.epochs: must be > 0"),
    ],
)
def test_bad_overrides_are_rejected(tmp_path: Path, item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, BASE), [item])


def test_config_is_frozen_and_dump_writes_back_no_derived_values(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE), ["train.out_dir=relative/run"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0  # type: ignore[misc]
    text = dump_config(cfg)
    again = load_config(_write(tmp_path, text))
    assert again == cfg and again.train.out_dir == "relative/run"  # not resolved to an absolute path
    assert config_from_dict({}) == ExperimentConfig()


def test_augment_section_nests_the_augmentation_config(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "augment:\n  rawboost_algo: 5\n  rawboost:\n    nbands: 3\n")
    with pytest.raises(
        ConfigError, match=r":10: augment.rawboost.nbands: unknown key; did you mean 'n_bands'"
    ):
        load_config(path)
    cfg = load_config(_write(tmp_path, BASE), ["augment.rawboost_algo=4", "augment.channel.codecs=[alaw]"])
    assert (cfg.augment.rawboost_algo, cfg.augment.channel.codecs) == (4, ("alaw",))
    with pytest.raises(ConfigError, match=r"augment: augment.rawboost_algo must be one of"):
        load_config(_write(tmp_path, BASE), ["augment.rawboost_algo=9"])


def test_config_diff_lists_changed_dotted_keys(tmp_path: Path) -> None:
    a = load_config(_write(tmp_path, BASE))
    b = load_config(_write(tmp_path, BASE), ["train.lr=1e-3", "model.overrides.gat_dims=[4, 2]"])
    assert config_diff(a, b) == ["model.overrides.gat_dims", "train.lr"]
    assert config_diff(a, b, ignore=["train.lr"]) == ["model.overrides.gat_dims"] and config_diff(a, a) == []
