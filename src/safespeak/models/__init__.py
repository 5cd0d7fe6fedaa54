"""Countermeasure models: registry, factories and reference import."""

from safespeak.models.base import CountermeasureModel
from safespeak.models.registry import build, from_reference, list_models, model_info, register

__all__ = ["CountermeasureModel", "build", "from_reference", "list_models", "model_info", "register"]
