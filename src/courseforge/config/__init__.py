"""YAML config -> validated `Settings`. Secrets only from the environment."""

from .loader import BUNDLED_PROFILES, LoadedConfig, api_key_for, load_config, masked, parse_config
from .settings import (
    BreakerSettings,
    BudgetSettings,
    GateSettings,
    HedgingSettings,
    LocalModelSettings,
    ModelSettings,
    PrioritySettings,
    ProviderSettings,
    RoutingSettings,
    SecondProviderSettings,
    SectionTypeSettings,
    Settings,
    SimilarityThresholds,
    second_model_id,
)

__all__ = [
    "BUNDLED_PROFILES",
    "BreakerSettings",
    "BudgetSettings",
    "GateSettings",
    "HedgingSettings",
    "LoadedConfig",
    "LocalModelSettings",
    "ModelSettings",
    "PrioritySettings",
    "ProviderSettings",
    "RoutingSettings",
    "SecondProviderSettings",
    "SectionTypeSettings",
    "Settings",
    "SimilarityThresholds",
    "api_key_for",
    "load_config",
    "masked",
    "parse_config",
    "second_model_id",
]
