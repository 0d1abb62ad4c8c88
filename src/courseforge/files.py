"""Reading a file a user named, within limits: the one guard every command (and the config
loaders) reads through, so no path — a FIFO, /dev/zero, a directory, a 4 GiB file — can hang a
command or fill its memory. And writing one atomically (a temp file or folder beside it, then a
rename: never a half-written output), for the CLI, the exports, the evals and the service."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from .errors import UserError

__all__ = [
    "MAX_COURSE_BYTES",
    "MAX_SMALL_FILE_BYTES",
    "atomic_dir",
    "atomic_zip",
    "read_limited",
    "read_text_limited",
    "write_text_atomic",
]

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


@contextlib.contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """A fresh folder to fill; on success it replaces `dest` in one rename (an existing `dest`
    folder is moved aside first and removed after), on failure it is removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not dest.is_dir():
        raise UserError("output exists and is not a folder", [("-o", f"{dest} is a file")])
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        yield tmp
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_zip(dest: Path, members: Mapping[str, str | bytes]) -> list[str]:
    """Write `members` (name -> text or bytes) as a zip at `dest` via a temp file and a rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, body in members.items():
                zf.writestr(name, body.encode("utf-8") if isinstance(body, str) else body)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return list(members)


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
