"""Bad input, as users send it, through the library and through the running app (gradio_client);
and checkpoint safety: sha256 before loading, nothing unpickled, clear messages naming the file.

Every bad input must give a clear message (a named crossgen exception in the library, our message in
the app's error) and never a stack trace; valid-but-odd images get a normal caption; after each bad
request the next good request is answered normally.
"""
from __future__ import annotations

import ast
import importlib
import json
import pickle
import re
import shutil
from pathlib import Path

import httpx
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from safetensors.torch import load_file, save_file

import crossgen
from crossgen import CheckpointError, CrossgenError, InvalidImageError, InvalidPromptError, InvalidRequestError
from crossgen.checkpoint import MANIFEST, RESTORE_HINT

from bad_inputs import CASES, OVER_UPLOAD_LIMIT, UPLOAD_LIMIT, Case
from browser import ROOT, AppServer
from helpers import scratch

GOOD_IMAGE = ROOT / "assets" / "examples" / "twemoji_dog.png"
STACK_TRACE = re.compile(r"Traceback|File \"|line \d+, in ")


def assert_clear(message: str, pattern: str) -> None:
    assert re.search(pattern, message), f"message {message!r} does not match {pattern!r}"
    assert not STACK_TRACE.search(message), f"stack trace in the message: {message!r}"


def write_case(case: Case, directory: Path) -> Path:
    path = directory / f"{case.id}{case.suffix}"
    path.write_bytes(case.payload())
    return path


# ================================================================================= library


def library_call(pipeline: crossgen.Pipeline, case: Case, source):
    if case.kind == "prompt":
        return pipeline.generate(source, n=2, seed=0)
    return pipeline.image_to_text(source, beam=3)


def check_good_library_calls(pipeline: crossgen.Pipeline) -> None:
    assert len(pipeline.text_to_image("red apple", n=1, seed=0)) == 1
    caption, _ = pipeline.image_to_text(GOOD_IMAGE, beam=2)[0]
    assert isinstance(caption, str) and caption


LIBRARY_RUNS = [pytest.param(c, s, id=f"{c.id}-{s}") for c in CASES for s in (["text"] if c.kind == "prompt" else ["path", "bytes"])]


@pytest.mark.parametrize("case, source", LIBRARY_RUNS)
def test_library_bad_and_odd_inputs(case, source, tiny_pipeline, tmp_path):
    data = write_case(case, tmp_path) if source == "path" else case.payload()
    if case.error is None:
        result = library_call(tiny_pipeline, case, data)
        if case.kind == "prompt":
            assert len(result.images) == 2 and result.prompt.known == ["red", "apple"]
            assert all(re.fullmatch(r"\w+", w) for w in result.prompt.unknown)  # no markup survives
        else:
            assert 1 <= len(result) <= 3 and all(isinstance(t, str) and t for t, _ in result)
    else:
        with pytest.raises(case.error) as info:
            library_call(tiny_pipeline, case, data)
        assert isinstance(info.value, CrossgenError)
        assert_clear(str(info.value), case.message)
        assert "<" not in str(info.value)  # markup in a prompt is never echoed back
    check_good_library_calls(tiny_pipeline)


@pytest.mark.parametrize("call, error, pattern", [
    (lambda p: p.generate("red apple", n=0), InvalidRequestError, r"Number of images must be between 1 and 16, not 0"),
    (lambda p: p.generate("red apple", n=17), InvalidRequestError, r"between 1 and 16, not 17"),
    (lambda p: p.generate("red apple", temperature=-1), InvalidRequestError, r"Temperature must be between 0 and 3"),
    (lambda p: p.generate(None), InvalidPromptError, r"must be text, not NoneType"),
    (lambda p: p.generate(b"red apple"), InvalidPromptError, r"must be text, not bytes"),
    (lambda p: p.image_to_text(GOOD_IMAGE, beam=0), InvalidRequestError, r"Beam width must be between 1 and 10, not 0"),
    (lambda p: p.image_to_text(GOOD_IMAGE, beam=11), InvalidRequestError, r"Beam width must be between 1 and 10, not 11"),
    (lambda p: p.image_to_text(ROOT / "no" / "such.png"), InvalidImageError, r"No image file at"),
    (lambda p: p.image_to_text(ROOT / "assets"), InvalidImageError, r"No image file at"),
    (lambda p: p.image_to_text(12345), InvalidImageError, r"Cannot read an image from a int"),
], ids=["n-0", "n-17", "temperature--1", "prompt-None", "prompt-bytes", "beam-0", "beam-11", "missing-path",
        "directory", "int"])
def test_library_bad_requests(call, error, pattern, tiny_pipeline):
    with pytest.raises(error) as info:
        call(tiny_pipeline)
    assert_clear(str(info.value), pattern)
    check_good_library_calls(tiny_pipeline)


# ================================================================================= the app's API


@pytest.fixture(scope="module")
def server(tiny_checkpoints, tmp_path_factory):
    with scratch(tmp_path_factory, "robustness_server") as folder, AppServer(tiny_checkpoints, folder) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def check_good_request(client: Client, server: AppServer, kind: str) -> None:
    """The next good request on the same endpoint is answered normally."""
    assert server.alive(), f"the server died:\n{server.log()[-3000:]}"
    if kind == "prompt":
        gallery, seed, words, pngs = client.predict("red apple", 1, 3, 1.0, api_name="/text_to_image")
        assert len(gallery) == 1 and seed == 3 and "red apple" in words and len(pngs) == 2
    else:
        caption, label, *_ = client.predict(handle_file(str(GOOD_IMAGE)), 2, api_name="/image_to_text")
        shown = {c["label"] for c in label["confidences"]}
        assert isinstance(caption, str) and caption and caption in shown and "something else" in shown


def api_call(client: Client, case: Case, tmp_path: Path):
    if case.kind == "prompt":
        return client.predict(case.payload(), 2, 0, 1.0, api_name="/text_to_image")
    return client.predict(handle_file(str(write_case(case, tmp_path))), 3, api_name="/image_to_text")


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_api_bad_and_odd_inputs(case, client, server, tmp_path):
    if case.error is None:
        if case.kind == "prompt":
            gallery, _, words, _ = api_call(client, case, tmp_path)
            assert len(gallery) == 2 and "Words used: **red apple**" in words
            assert "<" not in words and ">" not in words  # markup never reaches the page
        else:
            caption, label, *_ = api_call(client, case, tmp_path)
            assert isinstance(caption, str) and caption
            shown = [c["label"] for c in label["confidences"]]  # up to 3 captions and "something else"
            assert caption in shown and "something else" in shown and 2 <= len(shown) <= 4
    else:
        # gr.Error reaches the client as AppError carrying our message; an over-limit upload is refused by
        # gradio_client itself (ValueError) before it sends anything
        with pytest.raises((AppError, ValueError)) as info:
            api_call(client, case, tmp_path)
        assert_clear(str(info.value), case.api_message or case.message)
        assert "<" not in str(info.value)
    check_good_request(client, server, case.kind)


@pytest.mark.slow
def test_api_over_limit_upload_refused_by_server(server, client, tmp_path):
    """Sent without gradio_client's own check, an upload over max_file_size gets 413 and Gradio's message;
    nothing of it stays in the upload folder, and the server keeps serving."""
    for size in (UPLOAD_LIMIT + 1, 3 * UPLOAD_LIMIT):
        body = b"\x89PNG\r\n\x1a\n" + bytes(size - 8)
        r = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.png", body, "image/png")}, timeout=120)
        assert r.status_code == 413
        assert_clear(r.text, OVER_UPLOAD_LIMIT)
        check_good_request(client, server, "image")
    big = [p for p in server.upload_dir.rglob("*") if p.is_file() and p.stat().st_size > UPLOAD_LIMIT]
    assert not big, f"partial uploads left behind: {big}"
    # at the limit exactly, the upload is accepted (the limit is the one app.py sets, not a lower one)
    r = httpx.post(server.url + "gradio_api/upload",
                   files={"files": ("limit.png", b"\x89PNG" + bytes(UPLOAD_LIMIT - 4), "image/png")}, timeout=120)
    assert r.status_code == 200, r.text


IMAGE_ARG = {"path": str(GOOD_IMAGE), "meta": {"_type": "gradio.FileData"}}  # uploaded by gradio_client


@pytest.mark.slow
@pytest.mark.parametrize("api_name, args, pattern", [
    ("/text_to_image", ("red apple", 17, 0, 1.0), r"Value 17 is greater than maximum value 16"),
    ("/text_to_image", ("red apple", 0, 0, 1.0), r"Value 0 is less than minimum value 1"),
    ("/text_to_image", ("red apple", 2, 0, -1.0), r"Value -1.0 is less than minimum value 0.0"),
    ("/text_to_image", ("red apple", 2, 0, 9.0), r"Value 9.0 is greater than maximum value 2.0"),
    ("/text_to_image", (None, 2, 0, 1.0), r"The prompt must be text, not NoneType"),
    ("/image_to_text", (IMAGE_ARG, 0), r"Beam width must be between 1 and 10, not 0"),
    ("/image_to_text", (IMAGE_ARG, 11), r"Beam width must be between 1 and 10, not 11"),
    ("/image_to_text", (None, 3), r"Drop an image first"),
    # a file on the server that was never uploaded: refused by app.py, never read
    ("/image_to_text", ({"path": "/etc/passwd"}, 3), r"Upload the image through the app"),
    ("/image_to_text", ({"path": "/etc/passwd", "url": None, "orig_name": "x.png"}, 3), r"Upload the image through the app"),
    ("/image_to_text", ({"path": "../../../../etc/passwd"}, 3), r"Upload the image through the app"),
    # not even a file payload: Gradio's own validation refuses it with its generic message
    ("/image_to_text", ("/etc/passwd", 3), r"upstream Gradio app has raised an exception"),
], ids=["n-17", "n-0", "temperature--1", "temperature-9", "prompt-None", "beam-0", "beam-11", "no-image",
        "server-path", "server-path-filedata", "relative-traversal", "string-not-file"])
def test_api_bad_requests(api_name, args, pattern, client, server):
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=api_name)
    assert_clear(str(info.value), pattern)
    assert "root:" not in str(info.value)
    check_good_request(client, server, "prompt" if api_name == "/text_to_image" else "image")


@pytest.mark.slow
def test_api_server_survived_everything(server, client):
    """After the whole module's bad requests: still up, still answering both endpoints."""
    check_good_request(client, server, "prompt")
    check_good_request(client, server, "image")


# ================================================================================= checkpoints


def python_files() -> list[Path]:
    return sorted((ROOT / "crossgen").rglob("*.py")) + [ROOT / "app.py"]


def test_every_torch_load_is_weights_only():
    """grep the package: each `torch.load(` is called with weights_only=True (and nothing hides it)."""
    found = 0
    for path in python_files():
        text = path.read_text(encoding="utf-8")
        calls = [node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                 and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"]
        assert len(calls) == text.count("torch.load("), f"{path}: a torch.load( the parser did not see"
        for call in calls:
            kw = {k.arg: k.value for k in call.keywords}
            assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, \
                f"{path.relative_to(ROOT)}:{call.lineno}: torch.load without weights_only=True"
        found += len(calls)
        assert not re.search(r"from torch import [^\n]*\bload\b|import pickle|import dill|import joblib|"
                             r"cloudpickle|allow_pickle\s*=\s*True|torch\.jit\.load|pickle\.load", text), \
            f"{path.relative_to(ROOT)} may unpickle"
    assert found >= 1  # the grep itself works: crossgen has a couple of weights_only torch.load calls


def test_pipeline_loads_without_unpickling(tiny_checkpoints, monkeypatch):
    """Loading every model reads safetensors, JSON and word2vec binary only: torch.load / pickle are never used."""
    def refuse(*args, **kwargs):
        raise AssertionError("something unpickled while loading checkpoints")

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    p = crossgen.Pipeline.from_checkpoints(tiny_checkpoints, device="cpu")
    assert p.image_to_text(GOOD_IMAGE, beam=1)
    files = json.loads((tiny_checkpoints / MANIFEST).read_text())["files"]
    assert {Path(f).suffix for f in files} <= {".safetensors", ".json", ".bin"}
    assert not (tiny_checkpoints / "word2vec.bin").read_bytes().startswith(b"\x80")  # a pickle would


def tamper_safetensors(path: Path) -> None:
    """Re-save with one weight changed: still a valid safetensors file that loads fine."""
    state = load_file(str(path))
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] + 0.01
    save_file(state, str(path))


def tamper_json(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["config"]["max_len"] = meta["config"].get("max_len", 8) + 1
    path.write_text(json.dumps(meta))


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name, tamper", [
    ("vae.safetensors", tamper_safetensors),
    ("features.safetensors", tamper_safetensors),
    ("captioner.json", tamper_json),
    ("word2vec.bin", flip_last_byte),
])
def test_tampered_but_valid_file_caught_by_sha256(name, tamper, tiny_checkpoints, tmp_path):
    directory = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints, directory)
    tamper(directory / name)
    with pytest.raises(CheckpointError) as info:
        crossgen.Pipeline.from_checkpoints(directory, device="cpu")
    msg = str(info.value)
    assert str(directory / name) in msg and "does not match its sha256" in msg and RESTORE_HINT in msg
    if name != "captioner.json":  # the file itself is still loadable: only the sha256 check caught it
        crossgen.Pipeline.from_checkpoints(directory, device="cpu", verify=False)


def delete(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("name, damage, pattern", [
    (MANIFEST, delete, r"Missing checkpoint file .*manifest\.json"),
    (MANIFEST, lambda p: p.write_text("{not json"), r"Corrupt checkpoint file .*manifest\.json"),
    ("vae.safetensors", delete, r"Missing checkpoint file .*vae\.safetensors"),
    ("word2vec.bin", delete, r"Missing checkpoint file .*word2vec\.bin"),
    ("captioner.safetensors", lambda p: p.write_bytes(p.read_bytes()[:100]), r"captioner\.safetensors does not match"),
])
def test_missing_or_corrupt_file_named_with_restore_hint(name, damage, pattern, tiny_checkpoints, tmp_path):
    directory = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints, directory)
    damage(directory / name)
    with pytest.raises(CheckpointError) as info:
        crossgen.Pipeline.from_checkpoints(directory, device="cpu")
    assert_clear(str(info.value), pattern)
    assert RESTORE_HINT in str(info.value)


def test_app_reports_tampered_checkpoint(tiny_checkpoints, tmp_path, monkeypatch):
    """In the UI: the status line and each request say which file is wrong and how to restore it."""
    import gradio as gr

    directory = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints, directory)
    tamper_safetensors(directory / "vae.safetensors")
    monkeypatch.setenv("CROSSGEN_CHECKPOINTS", str(directory))
    monkeypatch.setenv("CROSSGEN_DEVICE", "cpu")
    app = importlib.import_module("app")
    status = app.status_message()
    assert "not available" in status and "vae.safetensors" in status and "git checkout" in status
    with pytest.raises(gr.Error, match=r"vae\.safetensors does not match its sha256"):
        app.text_to_image("red apple", 1, 0, 1.0)
