"""Score file + protocol -> metrics (EER, t-DCF, DCF, Cllr, a-DCF, t-EER) with per-attack / per-condition
breakdowns, as the official ASVspoof evaluation code computes them; and `safespeak evaluate`.

What is computed depends on the protocol format:

- every labelled format but `asvspoof5-sasv`: `eer`, `eer_threshold`, `per_attack` (all bona fide vs
  the spoofs of one attack; spoofs of unknown attack `-` only count in the pooled numbers), and with
  `bootstrap=N` a 95 % percentile bootstrap interval `eer_ci` (seeded, so repeatable);
- `asvspoof2019-la` + `asv_scores` (2019 `source key score`): `min_tdcf`, legacy 2019 t-DCF
  (clovaai/aasist);
- `asvspoof2021-la` + `asv_scores` (ASVTorch_Kaldi `score.txt`) + `asv_protocol` (ASV
  `trial_metadata.txt`, line-aligned): `min_tdcf`, revised 2021 t-DCF, pooled and per codec / attack
  with C012 recomputed per cell (2021 eval-package);
- `asvspoof2021-la` / `-df` / ASVspoof5 release protocol: `per_condition` for codec, transmission,
  source (both classes restricted to the value) and vocoder (spoof-only, like attacks);
- `asvspoof5*` Track 1: `min_dcf`, `act_dcf`, `cllr` (bits; scores taken as LLRs);
- `asvspoof5-sasv` (Track 2 keys and SASV scores): `a_dcf`, `min_tdcf` (the package's fixed ASV
  rates), `t_eer` (fraction).

EERs and t-EER are fractions; the table output shows them in percent. Reversed score polarity (EER > 0.5,
or a lower min t-DCF on negated scores, as the official 2021 LA script checks) adds a `warnings` entry.
"""

from __future__ import annotations

import json
import math
import os
import sys
import types
from collections.abc import Collection, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import numpy as np

from safespeak.errors import SafespeakError
from safespeak.protocols import ProtocolError, Trial, read_protocol
from safespeak.scorefiles import (
    ScoreFileError,
    ScoreTable,
    align_scores_to_ids,
    read_asv_scores_2019,
    read_asv_scores_2021,
    read_score_table,
    read_scores,
)

__all__ = ["EvaluationResult", "ScoreFileError", "evaluate", "format_table", "read_scores", "result_json"]

EVALUATION_RESULT_FORMAT = "safespeak-evaluation"
EVALUATION_RESULT_SCHEMA = 1


@dataclass(frozen=True)
class EvaluationResult:
    """What `evaluate` computed; None marks a metric the format does not give (see the module docstring).

    EERs are fractions. `result[key]` / `key in result` / `result.get(key)` read the fields that are set,
    as the plain dict of earlier versions did; `to_dict` gives that dict, `to_json`/`from_json` the file.
    """

    protocol_format: str
    subset: str
    scores_format: str
    n_bonafide: int
    n_spoof: int
    eer: float | None = None
    eer_threshold: float | None = None
    eer_ci: list[float] | None = None
    min_tdcf: float | None = None
    tdcf: str | None = None
    asv_error_rates: dict[str, float] | None = None
    min_dcf: float | None = None
    act_dcf: float | None = None
    cllr: float | None = None
    a_dcf: float | None = None
    t_eer: float | None = None
    n_target: int | None = None
    n_nontarget: int | None = None
    per_attack: dict[str, float | None] | None = None
    per_attack_min_tdcf: dict[str, float | None] | None = None
    per_condition: dict[str, dict[str, float | None]] | None = None
    per_condition_min_tdcf: dict[str, dict[str, float | None]] | None = None
    warnings: list[str] = field(default_factory=list)
    schema_version: int = EVALUATION_RESULT_SCHEMA

    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key, None) if key in _RESULT_FIELDS else None
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in _RESULT_FIELDS and getattr(self, key) is not None

    def get(self, key: str, default: Any = None) -> Any:
        """The field's value, or `default` when it is not set."""
        return self[key] if key in self else default

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as a plain dict (no schema_version)."""
        return {f: getattr(self, f) for f in _RESULT_FIELDS if f != "schema_version" and f in self}

    def to_json(self) -> str:
        """JSON with a `format` tag; non-finite numbers become null."""
        doc = {"format": EVALUATION_RESULT_FORMAT, "schema_version": self.schema_version, **self.to_dict()}
        return json.dumps(_json_safe(doc), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str | os.PathLike[str] = "<dict>") -> EvaluationResult:
        """Build from `to_dict`'s layout; unknown or missing fields raise `SafespeakError` naming them."""
        unknown = sorted(set(doc) - set(_RESULT_FIELDS))
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in doc]
        if unknown or missing:
            what = "; ".join(
                f"{k} field(s) {', '.join(v)}" for k, v in (("unknown", unknown), ("missing", missing)) if v
            )
            raise SafespeakError(what, path=source)
        return cls(**doc)

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike[str] = "<json>") -> EvaluationResult:
        """Parse `to_json`'s output; a foreign or newer file raises `SafespeakError` naming the field."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SafespeakError(f"not valid JSON ({exc.msg})", path=source, line=exc.lineno) from None
        if not isinstance(doc, dict) or doc.pop("format", None) != EVALUATION_RESULT_FORMAT:
            raise SafespeakError("not a safespeak evaluation result (field 'format')", path=source)
        if doc.get("schema_version") != EVALUATION_RESULT_SCHEMA:
            raise SafespeakError(f"unsupported schema_version {doc.get('schema_version')!r}", path=source)
        return cls.from_dict(doc, source)


_RESULT_FIELDS = tuple(f.name for f in fields(EvaluationResult))


# Fields broken down per value with both classes restricted to it (the 2021 "codec" factor type).
_BOTH_CLASS_FIELDS = ("codec", "transmission", "source")
# Fields that only spoofs carry (bona fide rows say `bonafide`): all bona fide vs that value's spoofs,
# like attacks (the 2021 eval-package's "spoof" factor type).
_SPOOF_ONLY_FIELDS = ("vocoder",)
_ASVSPOOF5_T1 = ("asvspoof5", "asvspoof5-keys", "asvspoof5-protocol")
_POOLED_FORMATS = ("asvspoof2021-la", "asvspoof2021-df")
# Keys the generic CSV protocol does not break down (ids / bookkeeping, not conditions).
_NOT_CONDITIONS = ("subset", "trim", "asv_label", "filename", "codec_seed", "codec_q")


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _eer(bona: np.ndarray, spoof: np.ndarray) -> float | None:
    """EER of a breakdown cell; None where a class is empty (not computable)."""
    from safespeak.metrics import compute_eer

    if bona.size == 0 or spoof.size == 0:
        return None
    return float(compute_eer(bona, spoof)[0])


class _Set:
    """Trials joined with their scores: labels, attacks and condition columns as arrays."""

    def __init__(self, trials: Sequence[Trial], scores: np.ndarray, side: dict[str, np.ndarray]) -> None:
        self.scores = scores  # (N,) float64, trial order
        self.side = side  # other score columns (Track 2 `asv`, `sasv`), (N,) each, trial order
        self.label = np.array([t.label for t in trials], dtype=np.int8)
        self.attack = np.array([t.attack for t in trials])
        fields = sorted({k for t in trials for k in t.conditions})
        self.cond = {f: np.array([t.conditions.get(f, "") for t in trials]) for f in fields}
        self.bona_mask = self.label == 1
        self.spoof_mask = self.label == 0

    def bona(self, mask: np.ndarray | None = None) -> np.ndarray:
        return self.scores[self.bona_mask if mask is None else self.bona_mask & mask]

    def spoof(self, mask: np.ndarray | None = None) -> np.ndarray:
        return self.scores[self.spoof_mask if mask is None else self.spoof_mask & mask]

    def attacks(self) -> list[str]:
        """Known attacks of the spoof trials ("-" = unknown is left out)."""
        return sorted(set(self.attack[self.spoof_mask].tolist()) - {"-"})

    def values(self, field: str) -> list[str]:
        return sorted(set(self.cond[field].tolist()) - {""})


def _join(trials: list[Trial], table: ScoreTable, protocol: str, others: Collection[str]) -> _Set:
    if any(t.label is None for t in trials):
        raise ProtocolError(f"{protocol}: the protocol has no keys (labels); cannot evaluate")
    idx = align_scores_to_ids(table, [t.trial_id for t in trials], protocol, ignore=others)
    if "key" in table.extra:  # 2019 4-column scores repeat the key: a disagreement means a wrong protocol
        keys = np.asarray(table.extra["key"])[idx]
        bad = [t.trial_id for t, k in zip(trials, keys, strict=True) if (k == "bonafide") != (t.label == 1)]
        if bad:
            raise ScoreFileError(
                f"the key column disagrees with {protocol} for {len(bad)} trials (e.g. {bad[:5]})",
                path=table.path,
            )
    return _Set(trials, table.scores[idx], {k: np.asarray(v)[idx] for k, v in table.extra.items()})


def _breakdowns(s: _Set, fmt: str) -> dict[str, Any]:
    """`per_attack` and `per_condition` EERs (None where a class is empty)."""
    out: dict[str, Any] = {"per_attack": {a: _eer(s.bona(), s.spoof(s.attack == a)) for a in s.attacks()}}
    if fmt in ("asvspoof2021-la", "asvspoof2021-df", *_ASVSPOOF5_T1):
        fields = [f for f in (*_BOTH_CLASS_FIELDS, *_SPOOF_ONLY_FIELDS) if f in s.cond]
    elif fmt == "csv":
        fields = [f for f in s.cond if f not in _NOT_CONDITIONS]
    else:
        fields = []
    per: dict[str, dict[str, float | None]] = {}
    for f in fields:
        col = s.cond[f]
        if f in _SPOOF_ONLY_FIELDS:
            per[f] = {v: _eer(s.bona(), s.spoof(col == v)) for v in sorted(set(col[s.spoof_mask].tolist()))}
        else:
            per[f] = {v: _eer(s.bona(col == v), s.spoof(col == v)) for v in s.values(f)}
    if per and fmt in _POOLED_FORMATS:  # the 2021 eval-package tables end with a Pooled entry
        pooled = _eer(s.bona(), s.spoof())
        per = {f: {**cells, "Pooled": pooled} for f, cells in per.items()}
    if per:
        out["per_condition"] = per
    return out


def _polarity(result: dict[str, Any], scores: np.ndarray, negated_min_tdcf: float | None = None) -> None:
    """Add `warnings`: constant scores, EER > 0.5, or a lower min t-DCF on negated scores."""
    warnings = result.setdefault("warnings", [])
    eer = result.get("eer")
    if np.unique(scores).size == 1:
        # One tie group: the official DET rejects every bona fide trial first, so the EER is 1.0.
        warnings.append(f"all {scores.size} scores are equal ({scores[0]!r}): the metrics say nothing")
    elif eer is not None and eer > 0.5:
        warnings.append(
            f"EER {eer:.4f} > 0.5: scores look reversed (safespeak and ASVspoof use higher = bona fide)"
        )
    tdcf = result.get("min_tdcf")
    if negated_min_tdcf is not None and tdcf is not None and negated_min_tdcf < tdcf:
        warnings.append(
            f"negated scores give a lower min t-DCF ({negated_min_tdcf:.6f} < {tdcf:.6f}): "
            "check the score polarity (higher must mean bona fide)"
        )


def _tdcf_2019(s: _Set, asv_path: str | os.PathLike[str]) -> tuple[dict[str, Any], float]:
    from safespeak.metrics import asv_error_rates, min_tdcf_2019

    asv = read_asv_scores_2019(asv_path)
    rates = asv_error_rates(asv["target"], asv["nontarget"], asv["spoof"])
    out: dict[str, Any] = {
        "min_tdcf": min_tdcf_2019(s.bona(), s.spoof(), rates),
        "tdcf": "legacy ASVspoof 2019 (clovaai/aasist)",
    }
    out["asv_error_rates"] = asdict(rates)
    return out, min_tdcf_2019(-s.bona(), -s.spoof(), rates)


def _c012(tar: np.ndarray, non: np.ndarray, spf: np.ndarray) -> tuple[float, float, float]:
    """2021 eval-package C0, C1, C2 of one cell; NaN when the cell lacks ASV trials of a class."""
    from safespeak.metrics import asv_error_rates, tdcf_2021_coefficients

    if tar.size == 0 or non.size == 0 or spf.size == 0:
        return (math.nan,) * 3
    return tdcf_2021_coefficients(asv_error_rates(tar, non, spf))


def _cell_tdcf(bona: np.ndarray, spoof: np.ndarray, c012: tuple[float, float, float]) -> float | None:
    from safespeak.metrics import min_tdcf_2021

    if bona.size == 0 or spoof.size == 0:
        return None
    return _nan_to_none(min_tdcf_2021(bona, spoof, c012=c012))


def _tdcf_2021(
    s: _Set, asv_scores: str | os.PathLike[str], asv_protocol: str | os.PathLike[str], subset: str
) -> tuple[dict[str, Any], float]:
    """Revised t-DCF as the 2021 eval-package: C012 recomputed per cell from the subset's ASV trials."""
    from safespeak.metrics import asv_error_rates, min_tdcf_2021

    asv = read_asv_scores_2021(asv_scores, asv_protocol, subset)
    tar, non, spf = asv.split()
    if tar.size == 0 or non.size == 0:
        raise ScoreFileError(
            f"no ASV target/nontarget trials in subset {subset!r} of {asv_protocol}", path=asv_scores
        )
    rates = asv_error_rates(tar, non, spf)
    c012 = _c012(tar, non, spf)
    out: dict[str, Any] = {"min_tdcf": min_tdcf_2021(s.bona(), s.spoof(), c012=c012)}
    out["tdcf"] = "revised ASVspoof 2021 (C012 from the ASV scores of the subset)"
    out["asv_error_rates"] = asdict(rates)
    out["per_attack_min_tdcf"] = {
        a: _cell_tdcf(s.bona(), s.spoof(s.attack == a), _c012(tar, non, asv.split(None, asv.attack == a)[2]))
        for a in s.attacks()
    }
    codec = s.cond["codec"]
    per_codec = {
        v: _cell_tdcf(s.bona(codec == v), s.spoof(codec == v), _c012(*asv.split(asv.codec == v)))
        for v in s.values("codec")
    }
    out["per_condition_min_tdcf"] = {"codec": {**per_codec, "Pooled": _nan_to_none(out["min_tdcf"])}}
    return out, min_tdcf_2021(-s.bona(), -s.spoof(), c012=c012)


def _sasv(s: _Set) -> dict[str, Any]:
    from safespeak.metrics import a_dcf, min_tdcf_asvspoof5, t_eer

    cls = s.cond["asv_label"]
    tar, non, spf = (cls == "target"), (cls == "nontarget"), (cls == "spoof")
    sasv, asv = s.side["sasv"], s.side["asv"]
    cm = s.scores
    return {
        "a_dcf": float(a_dcf(sasv[tar], sasv[non], sasv[spf])),
        "min_tdcf": float(min_tdcf_asvspoof5(cm[tar | non], cm[spf])),
        "tdcf": "revised t-DCF with the ASVspoof5 package's fixed ASV error rates",
        "t_eer": float(t_eer(asv[tar], asv[non], asv[spf], cm[tar | non], cm[spf])),
        "n_target": int(tar.sum()),
        "n_nontarget": int(non.sum()),
    }


def _cm_metrics(s: _Set) -> dict[str, Any]:
    """ASVspoof5 Track 1 costs (scores are taken as log-likelihood ratios for act_dcf and Cllr)."""
    from safespeak.metrics import act_dcf, cllr, min_dcf

    b, sp = s.bona(), s.spoof()
    return {"min_dcf": float(min_dcf(b, sp)), "act_dcf": float(act_dcf(b, sp)), "cllr": float(cllr(b, sp))}


def _check_asv_args(fmt: str, asv_scores: object, asv_protocol: object) -> None:
    if asv_scores is None and asv_protocol is None:
        return
    if fmt == "asvspoof2019-la" and asv_protocol is not None:
        raise ValueError("asvspoof2019-la: the 2019 ASV score file carries its keys; drop --asv-protocol")
    if fmt == "asvspoof2021-la" and (asv_scores is None or asv_protocol is None):
        raise ValueError("asvspoof2021-la: the t-DCF needs both --asv-scores (score.txt) and --asv-protocol")
    if fmt not in ("asvspoof2019-la", "asvspoof2021-la"):
        raise ValueError(
            f"{fmt}: ASV scores are used only with asvspoof2019-la and asvspoof2021-la "
            "(ASVspoof5 Track 2 reads them from the SASV score file)"
        )


def _metrics(
    s: _Set,
    fmt: str,
    subset: str,
    asv_scores: str | os.PathLike[str] | None,
    asv_protocol: str | os.PathLike[str] | None,
) -> tuple[dict[str, Any], float | None]:
    """Format-specific metrics and the min t-DCF of negated scores (None without a t-DCF)."""
    from safespeak.metrics import compute_eer, min_tdcf_asvspoof5

    if fmt == "asvspoof5-sasv":
        tdcf_negated = min_tdcf_asvspoof5(-s.bona(), -s.spoof())
        return _sasv(s), tdcf_negated
    eer, thr = compute_eer(s.bona(), s.spoof())
    out: dict[str, Any] = {"eer": float(eer), "eer_threshold": float(thr)}
    negated = None
    if fmt in _ASVSPOOF5_T1:
        out.update(_cm_metrics(s))
    if asv_scores is not None and fmt == "asvspoof2019-la":
        extra, negated = _tdcf_2019(s, asv_scores)
        out.update(extra)
    elif asv_scores is not None and asv_protocol is not None:
        extra, negated = _tdcf_2021(s, asv_scores, asv_protocol, subset)
        out.update(extra)
    out.update(_breakdowns(s, fmt))
    return out, negated


def evaluate(
    scores_path: str | os.PathLike[str],
    protocol_path: str | os.PathLike[str],
    protocol_format: str,
    *,
    subset: str = "all",
    asv_scores: str | os.PathLike[str] | None = None,
    asv_protocol: str | os.PathLike[str] | None = None,
    scores_format: str = "auto",
    bootstrap: int = 0,
) -> EvaluationResult:
    """Metrics of a score file against a protocol (see the module docstring for what each format gives).

    Trials are joined by id; a trial without a score, a score without a trial or a duplicate id raises
    `ScoreFileError`. Values not computable in a breakdown are None; EERs are fractions.
    """
    _check_asv_args(protocol_format, asv_scores, asv_protocol)
    trials = read_protocol(protocol_path, protocol_format, subset=subset)
    if not trials:
        raise ProtocolError(f"{protocol_path}: no trials (subset {subset!r})")
    table = read_score_table(scores_path, scores_format)
    if (protocol_format == "asvspoof5-sasv") != (table.fmt == "asvspoof5-sasv"):
        raise ScoreFileError(
            f"{table.fmt} scores do not fit protocol format {protocol_format} "
            "(Track 2 keys go with Track 2 SASV scores)",
            path=scores_path,
        )
    # Scores of the other 2021 subsets may be present (a full submission); ids in no subset may not.
    others = set() if subset == "all" else {t.trial_id for t in read_protocol(protocol_path, protocol_format)}
    s = _join(trials, table, f"{protocol_path} (subset {subset})", others)
    if not s.bona_mask.any() or not s.spoof_mask.any():
        raise ProtocolError(f"{protocol_path}: the set needs bona fide and spoof trials (subset {subset!r})")
    result: dict[str, Any] = {
        "protocol_format": protocol_format,
        "subset": subset,
        "scores_format": table.fmt,
        "n_bonafide": int(s.bona_mask.sum()),
        "n_spoof": int(s.spoof_mask.sum()),
    }
    metrics, negated = _metrics(s, protocol_format, subset, asv_scores, asv_protocol)
    result.update(metrics)
    if bootstrap > 0 and "eer" in result:
        from safespeak.metrics import bootstrap_eer_ci

        result["eer_ci"] = list(bootstrap_eer_ci(s.bona(), s.spoof(), n_boot=bootstrap))
    _polarity(result, s.scores, negated)
    return EvaluationResult.from_dict(result)


_PERCENT = ("eer", "t_eer")
_ROWS = (
    ("eer", "EER"), ("eer_threshold", "EER threshold"), ("min_tdcf", "min t-DCF"), ("min_dcf", "min DCF"),
    ("act_dcf", "act DCF"), ("cllr", "Cllr (bits)"), ("a_dcf", "a-DCF"), ("t_eer", "t-EER"),
)  # fmt: skip


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.4f} %" if key in _PERCENT else f"{value:.6f}"


def format_table(result: EvaluationResult) -> str:
    """Plain-text report of an `evaluate` result (EERs in percent)."""
    lines = [
        f"{result['protocol_format']} (subset {result['subset']}): "
        f"{result['n_bonafide']} bona fide, {result['n_spoof']} spoof trials"
    ]
    lines += [f"  {label:<14} {_fmt(k, result[k])}" for k, label in _ROWS if k in result]
    if "eer_ci" in result:
        lo, hi = result["eer_ci"]
        lines.insert(2, f"  {'EER 95% CI':<14} {_fmt('eer', lo)} .. {_fmt('eer', hi)}")
    if "tdcf" in result:
        lines.append(f"  (t-DCF: {result['tdcf']})")
    breakdowns = [("attack", result.get("per_attack", {}), result.get("per_attack_min_tdcf", {}))]
    tdcf_cond = result.get("per_condition_min_tdcf", {})
    breakdowns += [(f, d, tdcf_cond.get(f, {})) for f, d in result.get("per_condition", {}).items()]
    for name, eers, tdcfs in breakdowns:
        if not eers:
            continue
        width = max(16, *(len(v) for v in eers))
        lines += ["", f"  {'per ' + name:<{width + 2}} {'EER':>10}" + ("   min t-DCF" if tdcfs else "")]
        for v, e in eers.items():
            tail = f"   {_fmt('min_tdcf', tdcfs.get(v))}" if tdcfs else ""
            lines.append(f"    {v:<{width}} {_fmt('eer', e):>10}{tail}")
    return "\n".join(lines)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def result_json(result: EvaluationResult) -> dict[str, Any]:
    """`result` as a dict with non-finite floats as None, ready for `json.dumps(..., allow_nan=False)`."""
    return _json_safe(result.to_dict())


class _CallableModule(types.ModuleType):
    """`safespeak.evaluate` is both this module and the public function: importing the module rebinds
    the package attribute to the module, so calling the module calls `evaluate`."""

    def __call__(self, *args: Any, **kwargs: Any) -> EvaluationResult:
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
