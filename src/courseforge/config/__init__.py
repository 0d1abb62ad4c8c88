"""YAML config -> validated `Settings`. Secrets only from the environment."""

from .loader import BUNDLED_PROFILES, LoadedConfig, api_key_for, load_config, masked, parse_config
from .settings import (
    BatchSettings,
    BudgetSettings,
    CacheSettings,
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
    "BatchSettings",
    "BudgetSettings",
    "CacheSettings",
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
