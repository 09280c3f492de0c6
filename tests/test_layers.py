"""The import layers of docs/architecture.md ("Layers"), read from the source with `ast`.

Every import of every module in crossgen/ (and app.py) counts, function-local ones included: a layer
may import its own and the layers below it, never one above. A module that fits no layer fails here
until it is given one.
"""
from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

# Top-level modules of crossgen/ by layer (crossgen.data.* and crossgen.train.* go by their package).
BASE = {"errors", "device", "preprocess", "checkpoint", "seeds", "augment", "colour", "matte", "cli"}
MODELS = {"text_encoder", "image_features", "name_keys", "vae", "captioner", "interpolation", "prompt_hints", "concept_fallback", "edit",
          "skin_tone", "confidence", "evaluator", "object_reader"}
EVALUATE = {"evaluate", "composition"}  # the evaluation: may import every layer
SERVING = {"", "pipeline", "batching", "bench", "bench_server", "app_process", "app"}  # "": the package itself (its public API)
# What each layer may import. Serving may read the record format (data.records) but no data builder.
ALLOWED = {
    "base": {"base"},
    "models": {"base", "models"},
    "data": {"base", "data", "data.records"},
    "serving": {"base", "models", "serving", "data.records"},
    "train": {"base", "models", "data", "data.records", "train"},
    "evaluate": {"base", "models", "serving", "data", "data.records", "train", "evaluate"},
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
    """The layer of a module: base, models, data (data.records apart), serving, train or evaluate."""
    short = name.removeprefix("crossgen").lstrip(".")
    top = short.split(".")[0]
    if top == "data":
        return "data.records" if short == "data.records" else "data"
    if top == "train":
        return "train"
    if short in EVALUATE:
        return "evaluate"
    for label, names in (("base", BASE), ("models", MODELS), ("serving", SERVING)):
        if short in names:
            return label
    return None


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_module_has_a_layer():
    missing = sorted(name for name in modules() if layer(name) is None)
    assert not missing, f"give these modules a layer in tests/test_layers.py and docs/architecture.md: {missing}"


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
    src.write_text("def f():\n    from .train.features import train_features\n    import crossgen.pipeline\n")
    assert imports("crossgen.m", src, {"crossgen.train.features"}) == {"crossgen.train.features", "crossgen.pipeline"}
    assert layer("crossgen.pipeline") == "serving" and layer("crossgen.train.loop") == "train"
    assert "train" not in ALLOWED["serving"] and "serving" not in ALLOWED["models"] and "serving" not in ALLOWED["train"]
