"""The layers of docs/architecture.md, enforced: every module of src/courseforge sits in one
layer of the table there, imports only point down (or sideways within a layer), and no import
cycle exists between modules — lateral ones included. Imports inside functions count."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import courseforge

SRC = Path(courseforge.__file__).resolve().parent
DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def layers_from_doc() -> dict[str, int]:
    """Package -> rank (0 = the top layer), from the table after the `layers` marker."""
    text = DOC.read_text("utf-8")
    table = text[text.index("<!-- layers:") :].split("\n\n", 1)[0]
    rank: dict[str, int] = {}
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    for i, row in enumerate(rows):
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name in re.findall(r"`([a-z_]+)`", cells[1]):
            assert name not in rank, f"{name} is in two layers of docs/architecture.md"
            rank[name] = i
    return rank


RANK = layers_from_doc()


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["courseforge", *parts])


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def package_of(module: str) -> str:
    """The top-level package (or module) a module belongs to: its layer's unit."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = ".".join(
                    base[: len(base) - (node.level - 1)] + ([node.module] if node.module else [])
                )
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{a.name}" for a in node.names] + [prefix]
        for target in targets:
            if target.startswith("courseforge"):
                resolved = resolve(target)
                # a package's __init__ re-exporting its own children is not a dependency of design
                if resolved and resolved != module and not (is_package and resolved.startswith(module + ".")):
                    found.add(resolved)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_is_in_a_layer_and_every_layer_exists() -> None:
    packages = {package_of(m) for m in MODULES}
    assert packages - set(RANK) == set(), "modules of these packages are in no layer of docs/architecture.md"
    assert set(RANK) - packages == set(), "docs/architecture.md names packages that do not exist"


def test_imports_point_down_the_layers() -> None:
    upward = sorted(
        f"{m} ({package_of(m)}) imports {t} ({package_of(t)})"
        for m, targets in GRAPH.items()
        for t in targets
        if RANK[package_of(t)] < RANK[package_of(m)]
    )
    assert upward == [], "\n".join(upward)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycles_between_modules() -> None:
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_lateral_cycle() -> None:
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "b": {"a.x"}}
    assert cycles(graph) == [["a.x", "a.y", "a.z"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# -- docs/architecture.md names only what exists, and every module -------------------------------
# Every module path, every `path: name` and every module of its "Modules" list is in
# src/courseforge (a renamed or removed module fails here until the page says so), and every
# module of a listed package is in that list (a new module is named there when it lands).
ROOT = DOC.parent.parent
_DOC_TEXT = DOC.read_text(encoding="utf-8")
_PATH = re.compile(r"`((?:[a-z_]+/)*[a-z_]+\.py)(?::\s*([A-Za-z_][A-Za-z0-9_.]*))?`")
_TOKEN = re.compile(r"`([^`]+)`")


def _defined(module: Path, name: str) -> bool:
    """`name` (or `Class.attr`) is defined at the top of `module`."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    head, _, attr = name.partition(".")
    for node in tree.body:
        names: list[str] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        if head not in names:
            continue
        if not attr:
            return True
        if isinstance(node, ast.ClassDef):
            return any(
                isinstance(x, (ast.FunctionDef, ast.AsyncFunctionDef)) and x.name == attr for x in node.body
            )
    return False


def _module_exists(package: Path, name: str) -> bool:
    return (package / f"{name}.py").is_file() or (package / name).is_dir()


def _modules_section(*, inside: bool = False) -> list[tuple[str, list[str]]]:
    """Each bullet of "## Modules": its package and the modules it names (backticked lowercase
    names outside parentheses, or anywhere with `inside`; `sub/` switches to a subpackage or
    another package)."""
    section = _DOC_TEXT.split("## Modules", 1)[1].split("\n## ", 1)[0]
    bullets = re.split(r"\n- ", "\n" + section)
    out = []
    for bullet in bullets:
        text = " ".join(bullet.split())
        first = _TOKEN.match(text)
        if not first or not first.group(1).endswith("/"):
            continue
        depth, outside = 0, []
        for ch in text[first.end() :]:
            depth += ch == "("
            depth -= ch == ")"
            outside.append(ch if inside or (depth == 0 and ch not in "()") else " ")
        names = [t for t in _TOKEN.findall("".join(outside)) if re.fullmatch(r"_?[a-z][a-z0-9_]*/?", t)]
        out.append((first.group(1), names))
    return out


def test_every_module_path_it_names_exists() -> None:
    missing = []
    for path, name in _PATH.findall(_DOC_TEXT):
        module = ROOT / path if path.startswith(("tests/", "benchmarks/")) else SRC / path
        if not module.is_file():
            missing.append(path)
        elif name and not _defined(module, name):
            missing.append(f"{path}: {name}")
    assert not missing, f"docs/architecture.md names what is not in src/courseforge: {missing}"


def test_its_module_list_names_only_modules_that_exist() -> None:
    missing = []
    for package, names in _modules_section():
        here = SRC / package
        for name in names:
            if name.endswith("/"):
                here = here / name if (here / name).is_dir() else SRC / name
                if not here.is_dir():
                    missing.append(f"{package}{name}")
            elif not _module_exists(here, name):
                missing.append(f"{package}{name}")
    assert not missing, f"docs/architecture.md's module list names modules that are gone: {missing}"


def test_every_module_is_in_its_module_list() -> None:
    named = {(package, name) for package, names in _modules_section(inside=True) for name in names}
    listed_packages = {package for package, _ in _modules_section()}
    unnamed = []
    for package in sorted(listed_packages):
        for module in sorted((SRC / package).glob("*.py")):
            if module.stem != "__init__" and (package, module.stem) not in named:
                unnamed.append(f"{package}{module.name}")
    assert not unnamed, f"modules docs/architecture.md's module list does not name: {unnamed}"


#: "seed 000", "Seeds 000/001", "seed 003's": a citation of a seed document by its number.
SEED_CITATION = re.compile(r"\bseeds? 0\d\d\b", re.IGNORECASE)


def seed_citations(source: str, where: str) -> list[str]:
    """Comments, docstrings and strings (the reasons a report or a flag shows) of one Python
    source that cite a seed by number."""
    found = {
        f"{where}:{tok.start[0]}"
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT and SEED_CITATION.search(tok.string)
    }
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SEED_CITATION.search(node.value)
        ):
            found.add(f"{where}:{node.lineno}")
    return sorted(found)


def test_comments_and_reasons_state_the_rule_rather_than_cite_a_seed() -> None:
    """A comment or a run-time reason says the rule itself; docs/seed-rules.md is the one map
    from a rule to its seed."""
    cited = [
        hit
        for path in sorted(SRC.rglob("*.py"))
        for hit in seed_citations(path.read_text("utf-8"), str(path.relative_to(SRC)))
    ]
    for path in sorted(SRC.rglob("*.yaml")):
        for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if "#" in line and SEED_CITATION.search(line.split("#", 1)[1]):
                cited.append(f"{path.relative_to(SRC)}:{n}")
    assert not cited, (
        f"comments or strings citing a seed by number (say the rule; docs/seed-rules.md maps it): {cited}"
    )


def test_the_seed_citation_finder_sees_comments_docstrings_and_strings() -> None:
    source = '"""Module (seed 000)."""\n\n# Seeds 000/001: a rule\nx = f"reason {1} (seed 001)"\ny = "seed {n}"\n\n\ndef f():\n    """Seed 003\'s rule."""\n'
    assert seed_citations(source, "m") == ["m:1", "m:3", "m:4", "m:9"]
