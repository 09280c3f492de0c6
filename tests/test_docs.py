"""The README and docs/ as a new user meets them: links and anchors resolve, the Space's front matter
matches the pinned gradio, every large binary goes through LFS, and the README stays a short front page.
Fast: no model is loaded."""
from __future__ import annotations

import fnmatch
import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

from crossgen.checkpoint import write_manifest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, ROOT / "checkpoints" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MB = 1_000_000
TEST_COMMAND = ("python3 -m venv .venv && . .venv/bin/activate && pip install -q -r requirements-dev.txt"
                " && python -m pytest -q")

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`]*`")
SCRIPT = re.compile(r"\bpython3?\s+((?:[\w.-]+/)*[\w.-]+\.py)\b")


def prose_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines outside fenced code blocks."""
    out, fenced = [], False
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((i, line))
    return out


def front_matter(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "---", f"{path.name} has no YAML front matter"
    end = lines.index("---", 1)
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:end]) if not k.startswith(" ")}


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, punctuation and symbols dropped,
    spaces to hyphens (github-slugger)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"[`*]", "", text).strip().lower()  # code and emphasis markers
    kept = "".join(ch for ch in text if ch.isalnum() or ch in " -_" or unicodedata.category(ch).startswith("M"))
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path):
        m = HEADING.match(line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    return [(i, m.group(1)) for i, line in prose_lines(path) for m in LINK.finditer(INLINE_CODE.sub("", line))]


def test_pages_exist():
    assert (ROOT / "docs").is_dir()
    for name in ["features", "quality", "speed", "training", "data", "deploy", "architecture", "experiments"]:
        assert (ROOT / "docs" / f"{name}.md").is_file(), f"docs/{name}.md is missing"
    assert (ROOT / "LICENSE").is_file() and "MIT License" in (ROOT / "LICENSE").read_text(encoding="utf-8")


def test_github_slug_rules():
    assert github_slug("Text → image") == "text--image"
    assert github_slug("2026-11-28 A \"no tone\" class; concept heads on earlier layers") == \
        "2026-11-28-a-no-tone-class-concept-heads-on-earlier-layers"
    assert github_slug("Use it from an `MCP` client") == "use-it-from-an-mcp-client"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(page):
    bad = []
    for line, target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_relative_to(ROOT) or not dest.exists():
            bad.append(f"{page.name}:{line}: {target} (no such file)")
        elif anchor:
            if dest.suffix != ".md" or not dest.is_file():
                bad.append(f"{page.name}:{line}: {target} (an anchor into a file that is not Markdown)")
            elif anchor not in anchors(dest):
                bad.append(f"{page.name}:{line}: {target} (no heading with that anchor in {dest.name})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_named_in_the_docs_exist(page):
    """`python some/script.py` in a page names a file that exists (scripts get moved)."""
    text = page.read_text(encoding="utf-8")
    missing = sorted({s for s in SCRIPT.findall(text) if not (ROOT / s).is_file()})
    assert not missing, f"{page.name} names scripts that do not exist: {missing}"


REPO_PATH = re.compile(r"^(?:(?:crossgen|tests|assets|checkpoints|docs|scripts)/[\w./-]*"
                       r"|requirements[\w-]*\.txt|pyproject\.toml|pytest\.ini|setup\.cfg|app\.py|LICENSE|\.ci/run)$")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repo_paths_named_in_the_docs_exist(page):
    """A repository path in `code` in a page's prose (`crossgen/serving/pipeline.py`, `assets/examples/`) exists."""
    named = {span.strip("`") for _, line in prose_lines(page) for span in INLINE_CODE.findall(line)}
    missing = sorted(p for p in named if REPO_PATH.match(p) and not (ROOT / p).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def test_readme_is_a_short_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines (at most 150; move detail to docs/)"
    text = "\n".join(lines)
    assert TEST_COMMAND in text
    assert "pip install -r requirements.txt && python app.py" in text
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci, ".ci/run no longer runs the README's test command"


def test_front_matter_matches_the_gradio_pin():
    meta = front_matter(README)
    pins = re.findall(r"^gradio(?:\[[^\]]*\])?==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert len(pins) == 1, f"requirements.txt should pin gradio exactly once, found {pins}"
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"].strip("\"'") == pins[0]
    assert meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).is_file()
    assert 0 < len(meta["short_description"]) <= 60  # Hugging Face's limit
    assert meta["suggested_hardware"] == "cpu-basic"
    assert "tags" in meta


def lfs_patterns() -> list[str]:
    out = []
    for line in (ROOT / ".gitattributes").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#") and "filter=lfs" in fields[1:]:
            out.append(fields[0])
    return out


def lfs_match(path: str, patterns: list[str]) -> bool:
    """gitattributes matching: a pattern without a slash matches the file name at any depth, one with a
    slash matches the path from the repository root."""
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        if "/" not in pattern.rstrip("/"):
            if fnmatch.fnmatchcase(name, pattern):
                return True
        elif fnmatch.fnmatchcase(path, pattern.lstrip("/").replace("**/", "*")):
            return True
    return False


def is_binary(path: Path) -> bool:
    with open(path, "rb") as f:
        return b"\0" in f.read(8000)  # git's own test


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.decode().split("\0") if p]


def test_lfs_patterns_cover_every_large_binary():
    patterns = lfs_patterns()
    assert {"*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.onnx"} <= set(patterns)
    large = [p for p in tracked_files() if (ROOT / p).is_file() and (ROOT / p).stat().st_size > MB]
    binaries = [p for p in large if is_binary(ROOT / p)]
    assert "checkpoints/word2vec.bin" in binaries or not (ROOT / "checkpoints" / "word2vec.bin").is_file()
    uncovered = [p for p in binaries if not lfs_match(p, patterns)]
    assert not uncovered, f"binary files over 1 MB without an LFS pattern in .gitattributes: {uncovered}"
    if not binaries:
        return
    # git agrees with the matching above
    attrs = subprocess.run(["git", "check-attr", "filter", "--", *binaries], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    assert all(line.endswith(": filter: lfs") for line in attrs), attrs


def test_lfs_matching_rules():
    patterns = ["*.safetensors", "saved_model/**/*", "*tfevents*"]
    assert lfs_match("checkpoints/vae.safetensors", patterns)
    assert lfs_match("saved_model/a/b.pb", patterns)
    assert lfs_match("runs/events.out.tfevents.1", patterns)
    assert not lfs_match("checkpoints/vae.json", patterns)


def test_model_card_is_not_a_checkpoint_file(tmp_path):
    """checkpoints/README.md can be edited without breaking manifest verification after a retrain."""
    (tmp_path / "vae.json").write_text("{}")
    (tmp_path / "README.md").write_text("# model card\n")
    assert set(write_manifest(tmp_path)["files"]) == {"vae.json"}
    manifest = (ROOT / "checkpoints" / "manifest.json").read_text(encoding="utf-8")
    assert '"README.md"' not in manifest
