"""AugmentConfig → batch transform: what gets built, probabilities, seeding, plain config fields."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from safespeak.augment import (
    AugmentConfig,
    ChannelConfig,
    ChannelTransform,
    Compose,
    RawBoostParams,
    RawBoostTransform,
    build_augment,
)
from safespeak.augment.rawboost import rawboost_batch


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_nothing_enabled_builds_nothing():
    assert build_augment(AugmentConfig()) is None
    assert build_augment(AugmentConfig(rawboost_algo=3, rawboost_p=0.0)) is None


def test_rawboost_only_equals_the_batched_function():
    cfg = AugmentConfig(rawboost_algo=5, rawboost=RawBoostParams(p=5.0))
    t = build_augment(cfg)
    assert isinstance(t, RawBoostTransform)
    x = torch.randn(3, 3000, generator=_gen(0)) * 0.2
    assert torch.equal(t(x, _gen(1)), rawboost_batch(x, 5, _gen(1), RawBoostParams(p=5.0)))


def test_rawboost_probability_leaves_other_examples_untouched():
    x = torch.randn(64, 800, generator=_gen(2)) * 0.2
    y = build_augment(AugmentConfig(rawboost_algo=3, rawboost_p=0.5))(x, _gen(3))
    untouched = (y == x).all(1)
    assert 16 < int(untouched.sum()) < 48


def test_rawboost_then_channel_in_order_and_reproducible():
    cfg = AugmentConfig(rawboost_algo=2, channel=ChannelConfig(codec_p=1.0, codecs=("mulaw",)))
    t = build_augment(cfg)
    assert isinstance(t, Compose)
    assert [type(s) for s in t.transforms] == [RawBoostTransform, ChannelTransform]
    x = torch.randn(2, 1000, generator=_gen(4)) * 0.2
    y = t(x, _gen(5))
    assert torch.equal(y, t(x, _gen(5)))
    g = _gen(5)
    want = ChannelTransform(cfg.channel)(RawBoostTransform(2)(x, g), g)
    assert torch.equal(y, want)


def test_invalid_values_are_rejected():
    with pytest.raises(ValueError, match="rawboost_algo"):
        AugmentConfig(rawboost_algo=11)
    with pytest.raises(ValueError, match="rawboost_p"):
        AugmentConfig(rawboost_p=-0.1)


_PLAIN = (int, float, str, bool)


def _check_plain(cls: type, path: str) -> int:
    hints = typing.get_type_hints(cls)
    n = 0
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            assert tp.__dataclass_params__.frozen, f"{path}.{f.name} must be frozen"
            n += _check_plain(tp, f"{path}.{f.name}")
        elif typing.get_origin(tp) is tuple:
            assert all(a in _PLAIN or a is Ellipsis for a in typing.get_args(tp)), f"{path}.{f.name}: {tp}"
        else:
            assert tp in _PLAIN, f"{path}.{f.name} has a non-plain type {tp}"
        n += 1
    return n


def test_config_is_frozen_plain_data_for_the_yaml_loader():
    assert AugmentConfig.__dataclass_params__.frozen
    assert _check_plain(AugmentConfig, "augment") > 20
    with pytest.raises(dataclasses.FrozenInstanceError):
        AugmentConfig().rawboost_algo = 3  # type: ignore[misc]
    # A nested dict from YAML maps onto the dataclasses field by field.
    cfg = AugmentConfig(rawboost_algo=4, rawboost=RawBoostParams(**{"n_f": 3, "snr_min": 5.0}))
    assert cfg.rawboost.n_f == 3 and cfg.rawboost.max_coeff == 100


def test_documented_entry_point_is_reachable_by_attribute():
    import safespeak.augment

    assert callable(safespeak.augment.rawboost.rawboost)
