"""YAML config -> validated `Settings`. Secrets only from the environment."""

from .loader import BUNDLED_PROFILES, LoadedConfig, api_key_for, load_config, masked, parse_config
from .settings import (
    BudgetSettings,
    GateSettings,
    LocalModelSettings,
    ModelSettings,
    PrioritySettings,
    ProviderSettings,
    RoutingSettings,
    SectionTypeSettings,
    Settings,
    ShadowSettings,
    SimilarityThresholds,
)

__all__ = [
    "BUNDLED_PROFILES",
    "BudgetSettings",
    "GateSettings",
    "LoadedConfig",
    "LocalModelSettings",
    "ModelSettings",
    "PrioritySettings",
    "ProviderSettings",
    "RoutingSettings",
    "SectionTypeSettings",
    "Settings",
    "ShadowSettings",
    "SimilarityThresholds",
    "api_key_for",
    "load_config",
    "masked",
    "parse_config",
]
