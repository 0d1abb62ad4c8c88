"""Reading a file a user named, within limits: the one guard every command (and the config
loaders) reads through, so no path — a FIFO, /dev/zero, a directory, a 4 GiB file — can hang a
command or fill its memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import UserError

__all__ = ["MAX_COURSE_BYTES", "MAX_SMALL_FILE_BYTES", "read_limited", "read_text_limited"]

#: A course, a report, an eval baseline: far above any real one (a 60-lesson course is ~1 MB).
MAX_COURSE_BYTES = 64 * 1024 * 1024
#: A config YAML, a plan.
MAX_SMALL_FILE_BYTES = 2_000_000


def read_limited(file: Path, max_bytes: int, *, what: str = "input") -> bytes:
    """The bytes of `file`, reading at most `max_bytes` + 1 of them: a FIFO, a device
    (/dev/zero) or a directory is refused before any read (a FIFO is opened without blocking),
    and a larger file is refused without reading the rest. UserError names the file."""
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise UserError(f"cannot read {what}", [(str(file), exc.strerror or str(exc))]) from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # checked before fdopen, which refuses a directory with a traceback
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device"
        raise UserError(f"cannot read {what}", [(str(file), f"not a regular file ({kind})")])
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise UserError(
            f"{what} too large",
            [(str(file), f"more than {max_bytes} bytes exceeds the limit of {max_bytes}")],
        )
    return raw


def read_text_limited(file: Path, max_bytes: int, *, what: str = "input") -> str:
    """`read_limited` decoded as UTF-8 (a file that is not is a UserError naming it)."""
    raw = read_limited(file, max_bytes, what=what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot read {what}", [(str(file), f"not UTF-8 text (byte {exc.start})")]) from exc
