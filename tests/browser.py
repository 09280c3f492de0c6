"""Driving the app as a user would, shared by the tests and `scripts/screenshots.py`:

- `AppServer` (from `crossgen.serving.app_process`, shared with the benchmark): `python app.py` in a subprocess on
  127.0.0.1 (its own process, so its memory can be read and a crash cannot take the test runner with it);
- `chromium_page`: Debian's Chromium driven by Playwright's Python package (never `playwright install`);
- `draw` / `caption`: the two user journeys in the page.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from crossgen.serving.app_process import ROOT, AppServer  # noqa: F401  (re-exported for the tests and scripts)

CHROMIUM = Path(os.environ.get("CROSSGEN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
UI_TIMEOUT_MS = 60_000  # generous: the machine may be busy; nothing here measures speed
TOAST_GRACE_MS = 750  # how long an error toast may lag behind the end of the busy state


# ----------------------------------------------------------------------------------------- the browser

def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file():
        return f"Chromium not found at {CHROMIUM} (install Debian's `chromium` or set CROSSGEN_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the `playwright` Python package is not installed (pip install -r requirements-dev.txt)"
    return None


@contextmanager
def chromium_page(user_data_dir: str | Path, width: int = 1280, height: int = 900) -> Iterator:
    """A page in a headless Chromium with a fresh profile in `user_data_dir` (deleted afterwards)."""
    from playwright.sync_api import sync_playwright

    user_data_dir = Path(user_data_dir)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        try:
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
            shutil.rmtree(user_data_dir, ignore_errors=True)


# ----------------------------------------------------------------------------------------- the user journeys
# Elements are found by what a user sees: tab names, button texts, the "Prompt" and "Caption" labels.
# Gradio's own markers (status tracker, toast, thumbnails) only tell when an answer has arrived.

# an output is busy while its progress overlay shows; after an error the overlay stays, with a "Clear" button
BUSY = """panel => [...panel.querySelectorAll('[data-testid="status-tracker"]')]
    .some(el => !el.classList.contains('hide') && !el.querySelector('.clear-status'))"""
BUSY_WATCH = """panel => {
    // remember whether any output of this tab was busy since the watch began
    const busy = %s;
    window.__crossgenBusy = false;
    window.__crossgenObserver?.disconnect();
    window.__crossgenObserver = new MutationObserver(() => { if (busy(panel)) window.__crossgenBusy = true; });
    window.__crossgenObserver.observe(panel, {attributes: true, attributeFilter: ['class'], childList: true, subtree: true});
}""" % BUSY


class UIError(RuntimeError):
    """The app answered with an error message (a `gr.Error` toast) instead of a result."""


def open_tab(page, tab: str, button: str):
    """Select the tab named `tab` and return its panel (the visible tab panel holding `button`)."""
    page.get_by_role("tab", name=tab, exact=True).click()
    return page.get_by_role("tabpanel").filter(has=page.get_by_role("button", name=button, exact=True))


def error_toasts(page) -> list[str]:
    """The texts of the error messages now shown."""
    return [t.strip() for t in page.locator('[data-testid="toast-body"].error [data-testid="toast-text"]').all_inner_texts()]


def clear_toasts(page) -> None:
    """Close the messages now shown, so that only new ones count."""
    from playwright.sync_api import expect

    page.get_by_test_id("toast-close").evaluate_all("els => els.forEach(el => el.click())")
    expect(page.get_by_test_id("toast-body")).to_have_count(0)


def wait_until(page, done: Callable[[], bool], what: str, timeout_ms: int = UI_TIMEOUT_MS) -> None:
    """Poll `done()` until true; `UIError` with the app's message as soon as it shows an error."""
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        if errors := error_toasts(page):
            raise UIError("; ".join(errors))
        if done():
            return
        page.wait_for_timeout(100)
    raise TimeoutError(f"{what} did not happen within {timeout_ms / 1000:.0f} s")


def click_and_wait(page, panel, button: str) -> None:
    """Click `button` in `panel` and return once the tab's outputs have been busy and are idle again;
    `UIError` with the message if the app shows an error instead."""
    clear_toasts(page)
    wait_until(page, lambda: not panel.evaluate(BUSY), "the end of earlier updates")  # e.g. on typing
    panel.evaluate(BUSY_WATCH)
    panel.get_by_role("button", name=button, exact=True).click()
    wait_until(page, lambda: page.evaluate("window.__crossgenBusy") and not panel.evaluate(BUSY),
               f"an answer to {button!r}")
    # an error's toast can render a moment after the outputs stop being busy: look once more after a grace
    page.wait_for_timeout(TOAST_GRACE_MS)
    if errors := error_toasts(page):
        raise UIError("; ".join(errors))


def loaded_images(images) -> list[tuple[str, int, int]]:
    """(src, natural width, natural height) of each <img> in `images`, once each has finished loading."""
    from playwright.sync_api import expect

    out = []
    for img in images.all():
        img.scroll_into_view_if_needed()
        expect(img).to_have_js_property("complete", True)
        out.append(tuple(img.evaluate("el => [el.currentSrc || el.src, el.naturalWidth, el.naturalHeight]")))
    return out


def draw(page, prompt: str) -> list[tuple[str, int, int]]:
    """Text → Image: type `prompt`, click "Draw"; the gallery's images as (src, width, height)
    (a width of 0 is an image the browser could not load). `UIError` if the app refuses the prompt."""
    panel = open_tab(page, "Text → Image", "Draw")
    panel.get_by_label("Prompt", exact=True).fill(prompt)
    click_and_wait(page, panel, "Draw")
    thumbnails = panel.get_by_role("button", name=re.compile(r"^Thumbnail \d+ of \d+$"))
    return loaded_images(thumbnails.locator("img"))


def caption(page, image_path: str | Path) -> str:
    """Image → Text: upload the file at `image_path`, wait for its preview, click "Caption"; the caption
    shown. `UIError` if the app refuses the image."""
    panel = open_tab(page, "Image → Text", "Caption")
    file_input = 'input[type="file"][accept*="image"]'
    clear_toasts(page)
    panel.locator(file_input).first.set_input_files(str(image_path))
    # the upload component shows the file once the server has it
    upload = panel.locator(".block").filter(has=page.locator(file_input)).first
    preview = upload.locator(f'img[src*="{Path(image_path).name}"]').first
    wait_until(page, preview.is_visible, f"the upload of {Path(image_path).name}")
    click_and_wait(page, panel, "Caption")
    return panel.locator("#caption textarea, #caption input").first.input_value()


def not_an_emoji_notice(page) -> str:
    """The Image → Text tab's out-of-domain notice ("" when there is none)."""
    notice = page.locator("#not-an-emoji")
    return notice.first.inner_text().strip() if notice.count() else ""
