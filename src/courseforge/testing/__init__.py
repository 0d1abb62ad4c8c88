"""Test doubles shipped for our tests and for users' own tests."""

from .author import CourseAuthor
from .loopback import LoopbackReply, LoopbackServer, ReceivedRequest
from .scripted import Script, ScriptedModel, sequence

__all__ = [
    "CourseAuthor",
    "LoopbackReply",
    "LoopbackServer",
    "ReceivedRequest",
    "Script",
    "ScriptedModel",
    "sequence",
]
