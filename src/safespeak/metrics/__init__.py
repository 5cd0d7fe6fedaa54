"""ASVspoof metrics that reproduce the official evaluation code to the last bit.

Pure functions: 1-D score arrays in (higher = more bona fide), plain floats out; no file parsing.
Rates and EERs are **fractions** in [0, 1] (multiply by 100 for percent); DCFs / t-DCFs are normalised
(unitless); Cllr is in bits. Empty classes, NaN scores or wrong shapes raise ``ValueError``.

EER and DET (`safespeak.metrics.eer`; clovaai/aasist, 2021 eval-package and ASVspoof5 share this code)
    compute_det_curve(bonafide, spoof) -> (frr, far, thresholds)   # each (Nb + Ns + 1,)
    compute_eer(bonafide, spoof) -> (eer, threshold)
    AsvErrorRates(pfa, pmiss, pmiss_spoof, pfa_spoof)              # frozen dataclass
    asv_error_rates(target, nontarget, spoof, threshold=None) -> AsvErrorRates
        # accept = score >= threshold; None -> the ASV EER threshold (official semantics)

t-DCF (`safespeak.metrics.tdcf`)
    LegacyCostModel()   # ASVspoof 2019 priors/costs (Pspoof .05, Ptar .9405, Pnon .0095, Cfa 10, Cmiss 1)
    CostModel()         # revised 2021 / ASVspoof5 (same priors, Cmiss 1, Cfa 10, Cfa_spoof 10)
    min_tdcf_2019(bonafide, spoof, asv, costs=LegacyCostModel()) -> float     # clovaai/aasist legacy
    tdcf_2019_curve(bonafide, spoof, asv, costs) -> (tdcf, thresholds)
    tdcf_2021_coefficients(asv, costs=CostModel()) -> (C0, C1, C2)
    min_tdcf_2021(bonafide, spoof, asv=None, *, c012=None, costs=CostModel()) -> float
        # revised t-DCF; c012 = per-cell coefficients as the 2021 eval-package; NaN c012 -> NaN
    tdcf_2021_curve(bonafide, spoof, c012) -> (tdcf, thresholds)
    min_tdcf_asvspoof5(bonafide, spoof, asv=ASVSPOOF5_ASV_RATES, costs=CostModel()) -> float
        # organisers' hard-coded ASV rates, as the ASVspoof5 package
    asvspoof5_asv_org_rates(target, nontarget, spoof) -> AsvErrorRates   # its --asv_org path

ASVspoof5 DCFs, Cllr, SASV (`safespeak.metrics.dcf`)
    DcfCostModel()                  # Pspoof .05, Cmiss 1, Cfa 10
    min_dcf(bonafide, spoof, costs=DcfCostModel()) -> float
    min_dcf_with_threshold(bonafide, spoof, costs) -> (min_dcf, threshold)
    act_dcf(bonafide, spoof, costs=DcfCostModel()) -> float     # threshold -ln(beta), scores as LLRs
    cllr(bonafide, spoof) -> float                              # bits; inf beyond |score| ~ 710 (official)
    min_cllr(bonafide, spoof) -> float                          # bits; PAV (BOSARIS definition)
    ADcfCostModel()                 # Ptar .9405, Pnon .0095, Pspoof .05, Cmiss 1, Cfa_asv 10, Cfa_cm 10
    a_dcf(target, nontarget, spoof, costs=ADcfCostModel()) -> float   # from SASV scores
    a_dcf_with_threshold(target, nontarget, spoof, costs) -> (a_dcf, threshold)
    t_eer(target_asv, nontarget_asv, spoof_asv, bonafide_cm, spoof_cm, *, accelerated=True) -> float
        # concurrent t-EER as a FRACTION (the official returns percent)

Confidence intervals (`safespeak.metrics.ci`)
    bootstrap_eer_ci(bonafide, spoof, n_boot=1000, alpha=0.05, seed=0) -> (low, high)
    bootstrap_eers(bonafide, spoof, n_boot=1000, seed=0) -> (n_boot,) array

Breakdowns as the official tools: a per-attack EER compares *all* bona fide trials with the spoofs of
that attack (2019), or the bona fide of the subset / codec cell (2021); the 2021 eval-package
recomputes (C0, C1, C2) per (attack, codec) cell from the ASV scores of that cell (targets and
nontargets of the codec, spoofs of the attack and codec) with `asv_error_rates` +
`tdcf_2021_coefficients`.
"""

from safespeak.metrics.ci import bootstrap_eer_ci, bootstrap_eers
from safespeak.metrics.dcf import (
    ADcfCostModel,
    DcfCostModel,
    a_dcf,
    a_dcf_with_threshold,
    act_dcf,
    cllr,
    min_cllr,
    min_dcf,
    min_dcf_with_threshold,
    t_eer,
)
from safespeak.metrics.eer import AsvErrorRates, asv_error_rates, compute_det_curve, compute_eer
from safespeak.metrics.tdcf import (
    ASVSPOOF5_ASV_RATES,
    CostModel,
    LegacyCostModel,
    asvspoof5_asv_org_rates,
    min_tdcf_2019,
    min_tdcf_2021,
    min_tdcf_asvspoof5,
    tdcf_2019_curve,
    tdcf_2021_coefficients,
    tdcf_2021_curve,
)

__all__ = [
    "ASVSPOOF5_ASV_RATES",
    "ADcfCostModel",
    "AsvErrorRates",
    "CostModel",
    "DcfCostModel",
    "LegacyCostModel",
    "a_dcf",
    "a_dcf_with_threshold",
    "act_dcf",
    "asv_error_rates",
    "asvspoof5_asv_org_rates",
    "bootstrap_eer_ci",
    "bootstrap_eers",
    "cllr",
    "compute_det_curve",
    "compute_eer",
    "min_cllr",
    "min_dcf",
    "min_dcf_with_threshold",
    "min_tdcf_2019",
    "min_tdcf_2021",
    "min_tdcf_asvspoof5",
    "t_eer",
    "tdcf_2019_curve",
    "tdcf_2021_coefficients",
    "tdcf_2021_curve",
]
