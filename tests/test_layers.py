"""The import layers of docs/architecture.md ("Layers"), read from the source with `ast`.

Every import of every module in crossgen/ (and app.py) counts, function-local ones included: a layer
may import its own and the layers below it, never one above. A module that fits no layer fails here
until it is given one.
"""
from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

# The layer of each folder of crossgen/. A module directly under crossgen/ is a base helper, but for the package
# itself (its public API, served) and the two command entry points of the evaluation.
FOLDERS = {"imaging": "base", "models": "models", "postprocess": "postprocess", "data": "data", "serving": "serving",
           "train": "train", "evaluation": "evaluation"}
TOP = {"": "serving", "evaluate": "evaluation", "bench": "evaluation", "app": "serving"}  # "app": app.py
MAX_TOP_FILES = 8  # Python files directly under crossgen/, __init__.py included
# What each layer may import. Serving may read the record format (data.records) but no data builder.
ALLOWED = {
    "base": {"base"},
    "models": {"base", "models"},
    "postprocess": {"base", "models", "postprocess"},
    "data": {"base", "data", "data.records"},
    "serving": {"base", "models", "postprocess", "serving", "data.records"},
    "train": {"base", "models", "postprocess", "data", "data.records", "train"},
    "evaluation": {"base", "models", "postprocess", "serving", "data", "data.records", "train", "evaluation"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {module_name(p): p for p in (ROOT / "crossgen").rglob("*.py")}
    found["app"] = ROOT / "app.py"
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The crossgen modules `name` imports anywhere in its file (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "crossgen"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "crossgen":
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known  # `from . import module`
            out |= subs or {target}
    return out


def layer(name: str) -> str | None:
    """The layer of a module, read from its folder: base, models, postprocess, data (data.records apart), serving,
    train or evaluation; None for a folder that is not a layer."""
    short = name.removeprefix("crossgen").lstrip(".")
    if short == "data.records":
        return "data.records"
    if "." in short:
        return FOLDERS.get(short.split(".")[0])
    return TOP.get(short, "base") if short not in FOLDERS else FOLDERS[short]


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_module_has_a_layer():
    missing = sorted(name for name in modules() if layer(name) is None)
    assert not missing, f"give these modules' folder a layer in tests/test_layers.py and docs/architecture.md: {missing}"


def test_the_tree_shows_the_layers():
    """Few modules directly under crossgen/; every folder is a layer whose __init__.py says what it holds and what
    it may import."""
    top = sorted(p.name for p in (ROOT / "crossgen").glob("*.py"))
    assert len(top) <= MAX_TOP_FILES, f"{len(top)} modules directly under crossgen/: {top}"
    folders = {p.name for p in (ROOT / "crossgen").iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders == set(FOLDERS), f"folders without a layer, or layers without a folder: {folders ^ set(FOLDERS)}"
    for folder in sorted(folders):
        doc = ast.get_docstring(ast.parse((ROOT / "crossgen" / folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"crossgen/{folder}/__init__.py: say what the folder holds and may import"


def test_imports_run_down_the_layers():
    wrong = []
    for name, targets in import_graph().items():
        own = layer(name)
        allowed = ALLOWED["data"] if own == "data.records" else ALLOWED.get(own, set())  # no layer: see the test above
        for target in sorted(targets):
            if layer(target) not in allowed:
                wrong.append(f"{name} ({own}) imports {target} ({layer(target)})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycles():
    """Not in crossgen.data (where sources.py and its readers once imported each other) nor anywhere else."""
    graph = import_graph()
    cycles, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append(" -> ".join(path[path.index(node):] + [node]))
            return
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        done.add(node)

    for name in sorted(graph):
        visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def test_the_checker_sees_function_local_imports(tmp_path: Path):
    """The check is only as good as its reading: an import inside a function counts."""
    src = tmp_path / "crossgen" / "m.py"
    src.parent.mkdir()
    src.write_text("def f():\n    from .train.features import train_features\n    import crossgen.serving.pipeline\n")
    assert imports("crossgen.m", src, {"crossgen.train.features"}) == {"crossgen.train.features", "crossgen.serving.pipeline"}
    assert layer("crossgen.serving.pipeline") == "serving" and layer("crossgen.train.loop") == "train"
    assert "train" not in ALLOWED["serving"] and "serving" not in ALLOWED["models"] and "serving" not in ALLOWED["train"]
