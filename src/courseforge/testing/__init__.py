"""Test doubles shipped for our tests and for users' own tests."""

from .scripted import Script, ScriptedModel, sequence

__all__ = ["Script", "ScriptedModel", "sequence"]
