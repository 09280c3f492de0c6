"""Issue 7 through the running app (gradio_client): /prompt_words, /interpolate, /caption_generated,
/draw_from_caption, the n-best chart, and reproducibility over the API."""
import importlib

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from helpers import ROOT, free_port

DOG = ROOT / "assets" / "examples" / "twemoji_dog.png"


@pytest.fixture(scope="module")
def app_module(tiny_checkpoints):
    mp = pytest.MonkeyPatch()
    mp.setenv("CROSSGEN_CHECKPOINTS", str(tiny_checkpoints))
    mp.setenv("CROSSGEN_DEVICE", "cpu")
    yield importlib.import_module("app")
    mp.undo()


@pytest.fixture(scope="module")
def client(app_module):
    port = free_port()
    app_module.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                           max_file_size=app_module.MAX_UPLOAD)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    app_module.demo.close()


def image_bytes(items) -> list[bytes]:
    return [Image.open(item["image"]).convert("RGB").tobytes() for item in items]


def gallery_input(items) -> list[dict]:
    return [{"image": handle_file(item["image"]), "caption": None} for item in items]


def test_named_endpoints_exist(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/text_to_image", "/image_to_text", "/prompt_words", "/interpolate", "/caption_generated",
            "/draw_from_caption"} <= names


def test_every_output_is_named_and_counts_are_integers(client):
    """The API names each output after its component (no "value_25"), and a count (n, k, beam) is an integer."""
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, endpoint in api.items():
        labels = [r["label"] for r in endpoint["returns"]]
        assert all(label and not label.startswith("value_") for label in labels), (name, labels)
    types = {(name, p["parameter_name"]): p["python_type"]["type"] for name, e in api.items() for p in e["parameters"]}
    for key in (("/text_to_image", "n"), ("/draw_from_caption", "n"), ("/interpolate", "k"), ("/image_to_text", "beam")):
        assert types[key] == "int", key


def test_seed_fields_are_empty_until_something_ran(app_module):
    seeds = [b for b in app_module.demo.blocks.values() if isinstance(b, gr.Number) and b.interactive is False]
    assert len(seeds) == 3 and all(b.value is None and b.placeholder for b in seeds)


def test_prompt_words_endpoint(client):
    marks, suggestions = client.predict("Red applle with zzzz", api_name="/prompt_words")
    labels = {m["token"]: m["class_or_confidence"] for m in marks if m["token"].strip()}
    assert labels == {"red": "known", "applle": "unknown", "with": None, "zzzz": "unknown"}
    assert suggestions["applle"][0] == "apple" and suggestions["zzzz"] == []
    assert client.predict("   ", api_name="/prompt_words") == ([], {})


def test_suggestion_click_replaces_the_word(app_module):
    hints = {"applle": ["apple", "apples"], "zzzz": []}
    assert app_module.use_suggestion(1, hints, "Red Applle, please") == "Red apples, please"
    assert app_module.use_suggestion(None, hints, "Red Applle") == "Red Applle"
    update = app_module.suggestion_buttons(hints)
    assert update.samples == [["applle", "apple"], ["applle", "apples"]] and update.visible
    assert update.sample_labels == ["applle → apple", "applle → apples"]
    assert not app_module.suggestion_buttons({}).visible


def test_interpolate_endpoint_and_gif(client):
    strip, gif, seed = client.predict("red apple", "dog face", 4, 11, 1.0, api_name="/interpolate")
    assert seed == 11 and [s["caption"] for s in strip] == ["t = 0.00", "t = 0.33", "t = 0.67", "t = 1.00"]
    assert gif.endswith(".gif") and "red-apple-to-dog-face-seed11" in gif
    with Image.open(gif) as animation:
        assert animation.is_animated and animation.n_frames == 6 and animation.info.get("loop") == 0
    again, _, _ = client.predict("red apple", "dog face", 4, 11, 1.0, api_name="/interpolate")
    assert image_bytes(strip) == image_bytes(again)
    other, _, _ = client.predict("red apple", "dog face", 4, 12, 1.0, api_name="/interpolate")
    assert image_bytes(strip) != image_bytes(other)
    _, _, random_seed = client.predict("red apple", "dog", 2, -1, 1.0, api_name="/interpolate")
    assert 0 <= random_seed <= 2**31 - 1


def test_interpolate_first_frame_is_the_drawn_image(client):
    strip, _, _ = client.predict("red apple", "full moon", 3, 21, 1.0, api_name="/interpolate")
    drawn, *_ = client.predict("red apple", 1, 21, 1.0, api_name="/text_to_image")
    a, b = (np.asarray(Image.open(x["image"]).convert("RGB"), dtype=np.int16) for x in (strip[0], drawn[0]))
    assert np.abs(a - b).max() <= 4  # same latent and text vector; only batch-size rounding differs


@pytest.mark.parametrize("args, message", [
    (("red apple", "dog", 1, 0, 1.0), "minimum value 2|between 2 and 16"),
    (("red apple", "zzzz", 3, 0, 1.0), "No known word"),
    (("", "dog", 3, 0, 1.0), "no words"),
])
def test_interpolate_bad_input(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/interpolate")


def test_caption_generated_reads_back_the_drawn_images(client, tiny_pipeline):
    gallery, *_ = client.predict("red heart", 3, 8, 1.0, api_name="/text_to_image")
    read, summary = client.predict(gallery_input(gallery), api_name="/caption_generated")
    assert len(read) == 3 and image_bytes(read) == image_bytes(gallery)  # same images, now with captions
    expected = tiny_pipeline.caption_images([Image.open(g["image"]) for g in gallery], beam=3)
    assert [r["caption"] for r in read] == [text or "(no words)" for text, _ in expected]
    assert summary.startswith("**The captioner reads:**") and "3. *" in summary
    with pytest.raises(Exception, match="Draw some images first"):
        client.predict([], api_name="/caption_generated")


def test_draw_from_caption_is_text_to_image_of_the_caption(client):
    caption, *_ = client.predict(handle_file(str(DOG)), 3, api_name="/image_to_text")
    if not caption:
        pytest.skip("empty caption from the tiny random captioner")
    drawn, seed, words, pngs = client.predict(caption, 2, 4, 1.0, api_name="/draw_from_caption")
    direct, *_ = client.predict(caption, 2, 4, 1.0, api_name="/text_to_image")
    assert seed == 4 and len(drawn) == 2 and "Words used" in words and len(pngs) == 4
    assert image_bytes(drawn) == image_bytes(direct)
    # an unsure reading's mark is not drawn as a word
    unsure, *_ = client.predict(caption + " (unsure)", 2, 4, 1.0, api_name="/draw_from_caption")
    assert image_bytes(unsure) == image_bytes(direct)
    with pytest.raises(Exception, match="Caption an image first"):
        client.predict("", 2, 4, 1.0, api_name="/draw_from_caption")


def test_text_to_image_reproducible_over_api(client):
    first, seed, *_ = client.predict("sleepy dog", 3, -1, 1.0, api_name="/text_to_image")
    replay, seed2, *_ = client.predict("sleepy dog", 3, seed, 1.0, api_name="/text_to_image")
    assert seed2 == seed and image_bytes(first) == image_bytes(replay)


def test_nbest_chart_is_one_distribution(client, tiny_pipeline):
    """The chart shows the reading's probabilities (the tiny checkpoints have no calibration: the models' own,
    scaled to add up to at most 1) and "something else" with the rest: 100 % in all."""
    caption, label, *_ = client.predict(handle_file(str(DOG)), 4, api_name="/image_to_text")
    reading = tiny_pipeline.read(DOG, beam=4, n_best=4)
    shown = {c["label"]: c["confidence"] for c in label["confidences"]}
    assert shown.keys() == {text or "(no words)" for text, _ in reading.captions} | {"something else"}
    for (text, _), p in zip(reading.captions, reading.probabilities):
        assert shown[text or "(no words)"] == pytest.approx(p, rel=1e-4)
    assert sum(shown.values()) == pytest.approx(1.0)
    assert caption == (reading.captions[0][0] or "(no words)") and label["label"] == max(shown, key=shown.get)
    assert list(shown.values()) == sorted(shown.values(), reverse=True)


def test_nbest_label_keeps_an_empty_caption_visible_and_adds_up(app_module):
    chart = app_module.nbest_label([("", -0.5), ("dog", -1.0)], [0.5, 0.2])
    assert chart == {"(no words)": 0.5, "dog": 0.2, "something else": pytest.approx(0.3)}
    assert sum(app_module.nbest_label([("a", 0.0)], [1.0]).values()) == 1.0  # nothing left: something else 0


def test_handlers_turn_library_errors_into_gr_error(app_module):
    with pytest.raises(gr.Error, match="between 2 and 16"):
        app_module.interpolate("red apple", "dog", 20, 0, 1.0)
    with pytest.raises(gr.Error, match="Draw some images first"):
        app_module.caption_generated(None)


def test_edit_endpoint_draws_the_words_and_refuses_bad_input(client):
    """/edit_emoji with the name given (the tiny captioner reads nonsense): the caption the words make, the edited
    drawing and its transparent PNGs; no image, empty words and unknown words get the app's messages."""
    image, said, pngs = client.predict(handle_file(str(DOG)), "blue", "dog", api_name="/edit_emoji")
    assert Image.open(image).size == (192, 192) and "drawn as **blue dog**" in said and len(pngs) == 2
    _, said, _ = client.predict(handle_file(str(DOG)), "dark skin tone", "thumbs up", api_name="/edit_emoji")
    assert "**thumbs up dark skin tone**" in said
    with pytest.raises(Exception, match="Drop an image first"):
        client.predict(None, "blue", "dog", api_name="/edit_emoji")
    with pytest.raises(Exception, match="Type what to change"):
        client.predict(handle_file(str(DOG)), "  ", "dog", api_name="/edit_emoji")
    with pytest.raises(Exception, match="No known word"):
        client.predict(handle_file(str(DOG)), "zzzqqq", "dog", api_name="/edit_emoji")
    _, said, _ = client.predict(handle_file(str(DOG)), "blue", "dog", "OpenMoji", api_name="/edit_emoji")
    assert "drawn anew as **blue dog** from “" in said and "OpenMoji, CC-BY-SA-4.0" in said
    with pytest.raises(Exception, match="Picasso"):  # not one of the training artists
        client.predict(handle_file(str(DOG)), "blue", "dog", "Picasso", api_name="/edit_emoji")
    image, *_ = client.predict(handle_file(str(DOG)), "red", "dog", api_name="/edit_emoji")  # still serving


def test_edit_preview_shows_the_caption_before_drawing(app_module):
    assert app_module.edit_preview("red apple", "blue") == "Will draw: **blue apple** (a new colour, the rest kept)"
    assert "thumbs up dark skin tone" in app_module.edit_preview("thumbs up", "dark")
    assert app_module.edit_preview("", "blue") == app_module.edit_preview("dog", " ") == ""


def test_download_folder_survives_an_entry_removed_under_it(app_module, tmp_path, monkeypatch):
    """Concurrent requests clean old download folders: one may vanish between listing and its stat (a broken link
    stands in for it here); the request still gets its own fresh folder and old ones go."""
    import os
    import time

    monkeypatch.setattr(app_module, "DOWNLOAD_DIR", tmp_path / "downloads")
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "gone").symlink_to(tmp_path / "nowhere")
    old = tmp_path / "downloads" / "old"
    old.mkdir()
    os.utime(old, (time.time() - 2 * app_module.DOWNLOAD_KEEP_S,) * 2)
    folder = app_module.download_folder()
    assert folder.is_dir() and folder.parent == tmp_path / "downloads" and not old.exists()
