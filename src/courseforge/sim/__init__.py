"""The provider simulator: an OpenAI-compatible server with latency profiles and injected
faults, for benchmarks, fault tests and rehearsing a config without spending money.
`courseforge sim serve` runs it; tests use `SimServer` directly. Never a default provider."""

from .profiles import BUNDLED_SIM_PROFILES, FAULT_CLASSES, FaultRates, ModelProfile, SimProfile, load_profile
from .server import SimServer

__all__ = [
    "BUNDLED_SIM_PROFILES",
    "FAULT_CLASSES",
    "FaultRates",
    "ModelProfile",
    "SimProfile",
    "SimServer",
    "load_profile",
]
