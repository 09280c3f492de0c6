"""The app, started on a free port, answers both named endpoints through gradio_client."""
import importlib

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from helpers import free_port


@pytest.fixture(scope="module")
def client(tiny_checkpoints, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CROSSGEN_CHECKPOINTS", str(tiny_checkpoints))
    mp.setenv("CROSSGEN_DEVICE", "cpu")
    app = importlib.import_module("app")
    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    max_file_size=app.MAX_UPLOAD)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    app.demo.close()
    mp.undo()


def test_text_to_image_endpoint(client):
    gallery, seed, words, pngs = client.predict("red apple", 2, 5, 1.0, api_name="/text_to_image")
    assert len(gallery) == 2 and seed == 5 and "red apple" in words
    # the hints name the training drawings the images came from, with the artwork's licence
    assert "Drawn from the training drawings of: **" in words and ("Apache-2.0" in words or "CC-BY-SA-4.0" in words)
    # and each image's caption names its own drawing, artwork and licence
    assert all(g["caption"].startswith("from “") and g["caption"].split(", ")[-1] in words for g in gallery)
    # two RGBA PNGs per image, 64 and 256 px (the tiny random VAE draws no white ground to clear: the shipped
    # drawings' corners are checked in test_browser, the matte itself in test_matte)
    assert [Image.open(f).size for f in pngs] == [(64, 64), (256, 256)] * 2
    assert all(Image.open(f).mode == "RGBA" for f in pngs)
    again, *_ = client.predict("red apple", 2, 5, 1.0, api_name="/text_to_image")
    a, b = (Image.open(g["image"]).tobytes() for g in (gallery[0], again[0]))
    assert a == b


def test_image_to_text_endpoint(client, tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGBA", (50, 50), (255, 0, 0, 255)).save(path)
    caption, label, notice, check = client.predict(handle_file(str(path)), 3, api_name="/image_to_text")
    assert isinstance(caption, str) and caption
    shown = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert caption in shown and "something else" in shown and 2 <= len(shown) <= 4  # up to 3 captions and the rest
    assert sum(shown.values()) == pytest.approx(1.0) and label["label"] == max(shown, key=shown.get)
    # the tiny checkpoints ship no out-of-domain probe: every image counts as in domain, without a notice
    assert check == {"in_domain": True, "score": None, "named_by": "captioner", "threshold": None} and notice == ""


def test_bad_input_gives_message_and_server_keeps_serving(client, tmp_path):
    with pytest.raises(Exception, match="no words"):
        client.predict("   ", 1, 1, 1.0, api_name="/text_to_image")
    bad = tmp_path / "bad.png"
    bad.write_text("hello")
    with pytest.raises(Exception, match="not an image|cannot|damaged"):
        client.predict(handle_file(str(bad)), 3, api_name="/image_to_text")
    gallery, *_ = client.predict("dog", 1, 1, 1.0, api_name="/text_to_image")
    assert len(gallery) == 1


def test_upload_outside_gradio_folder_is_refused(client):
    import gradio as gr

    app = importlib.import_module("app")
    with pytest.raises(gr.Error, match="through the app"):
        app.image_to_text({"path": "/etc/passwd"}, 3)
    with pytest.raises(gr.Error, match="Drop an image"):
        app.image_to_text(None, 3)


def test_status_without_checkpoints(tmp_path, monkeypatch):
    app = importlib.import_module("app")
    monkeypatch.setenv("CROSSGEN_CHECKPOINTS", str(tmp_path / "none"))
    assert "not available" in app.status_message() and "No checkpoints installed" in app.status_message()


def test_about_panel_shows_the_shipped_figures_baselines_and_credits(monkeypatch):
    import json
    from pathlib import Path

    app = importlib.import_module("app")
    shipped = Path(__file__).resolve().parent.parent / "checkpoints"
    monkeypatch.setenv("CROSSGEN_CHECKPOINTS", str(shipped))
    metrics = json.loads((shipped / "metrics.json").read_text())
    text = app.about_markdown()
    model = metrics["captioning"]["methods"]["model"]
    assert f"{model['exact_top1']:.1%}" in text and f"{model['cider']:.2f}" in text
    for method, row in metrics["text_to_image"]["methods"].items():
        assert f"| {method} | {row['top1']:.1%} | {row['top5']:.1%} |" in text
    assert "nn_features" in text and "vae_shuffled_text" in text  # the baselines sit next to the models
    assert "Twemoji" in text and "CC-BY-SA-4.0" in text and "Apache-2.0" in text
    for artwork in app.crossgen.load(shipped, device="cpu").artists():  # every artist the shipped weights draw from
        assert artwork in text, f"{artwork} is not credited"
    monkeypatch.setenv("CROSSGEN_CHECKPOINTS", str(shipped / "missing"))
    assert "No evaluation figures" in app.about_markdown()
