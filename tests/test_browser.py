"""A real browser (Debian's chromium through Playwright) uses the page: create, hear, history, restore.

Screenshots go to a temporary folder (printed; kept by pytest under its basetemp). Skipped when
chromium or the playwright package is missing; CI installs both (see ``.ci/run``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest

from studio.recipes import read_recipe
from tests.test_app import launch, make_service

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
EXAMPLE = Path(__file__).resolve().parent.parent / "assets" / "examples" / "red-apple.png"
TIMEOUT = 60_000  # ms, for a busy CI machine


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def local_app(tiny_studio, tmp_path_factory):
    service = make_service(tiny_studio.pipeline, tmp_path_factory.mktemp("browser-history"))
    demo = launch(service)
    yield demo.local_url, service
    demo.close()


def download(url: str, folder: Path, name: str) -> Path:
    path = folder / name
    path.write_bytes(httpx.get(url, timeout=30).content)
    return path


def set_steps(page, count: int, index: int = 0) -> None:
    box = page.get_by_label("number input for Steps").nth(index)
    box.fill(str(count))
    box.press("Enter")


def test_create_hear_history_and_restore_in_a_browser(browser, local_app, tmp_path):
    app_url, service = local_app
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(TIMEOUT)
    page.goto(app_url)

    # Create: type a prompt, generate, see an image that carries its recipe
    assert page.locator("#stop").is_disabled()  # nothing to stop yet
    page.fill("#create-text textarea", "a red fire truck")
    set_steps(page, 2)
    page.click("#create")
    image = page.wait_for_selector("#create-gallery img")
    page.wait_for_selector("#progress:has-text('Done: 2 steps')")
    page.wait_for_selector("#stop:disabled")  # enabled only while the run lasts
    page.screenshot(path=shots / "1-create.png", full_page=True)
    assert re.search(r"/a-red-fire-truck-seed\d+\.png$", image.get_attribute("src"))  # a download keeps the prompt and seed
    made = download(image.get_attribute("src"), tmp_path, "made.png")
    assert read_recipe(made)["inputs"] == {"text": "a red fire truck"}

    # Stop: a long run can be stopped at its next step; nothing of it is kept
    set_steps(page, 100)
    page.click("#create")
    page.wait_for_selector("#stop:enabled")
    page.click("#stop")
    page.wait_for_selector("#progress:has-text('Stopped')")
    page.wait_for_selector("#stop:disabled")
    assert len(service.history) == 1

    # Hear: upload an image, get a sound
    page.get_by_role("tab", name="Hear").click()
    page.locator("#hear-image input[type=file]").set_input_files(EXAMPLE)
    page.wait_for_selector("#hear-image img")
    set_steps(page, 2, index=1)
    page.click("#hear")
    link = page.wait_for_selector('#hear-sound a[download$=".wav"]')
    page.screenshot(path=shots / "2-hear.png", full_page=True)
    sound = download(link.get_attribute("href"), tmp_path, "heard.wav")
    assert read_recipe(sound)["output"] == "audio"

    # History: both results are there; load the sound's recipe back into Create
    page.get_by_role("tab", name="History").click()
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_function("document.querySelectorAll('#history-gallery img').length >= 2")
    page.locator("#history-gallery button.thumbnail-item").first.click()
    page.wait_for_selector("#history-files a[download^='sound-seed'][download$='.wav']")  # its files, to download
    page.once("dialog", lambda dialog: dialog.dismiss())  # "Delete this item ...?" declined: it stays
    page.click("#history-delete")
    page.wait_for_timeout(1000)
    assert len(service.history) == 2
    page.click("#history-load")
    page.wait_for_selector("#create-image img")  # the saved input image came back
    assert page.locator("#create-text textarea").input_value() == ""
    assert page.locator("#create-output").get_by_label("sound", exact=True).is_checked()
    page.screenshot(path=shots / "3-history-loaded.png", full_page=True)

    # Restore: uploading a generated PNG offers its recipe
    page.locator("#create-image button[aria-label='Remove Image']").click()
    page.locator("#create-image input[type=file]").set_input_files(made)
    page.click("#restore")
    page.wait_for_function("document.querySelector('#create-text textarea').value === 'a red fire truck'")
    assert page.locator("#create-output").get_by_label("image", exact=True).is_checked()
    page.screenshot(path=shots / "4-restored.png", full_page=True)

    # Delete, confirmed this time
    page.get_by_role("tab", name="History").click()
    page.locator("#history-gallery button.thumbnail-item").first.click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#history-delete")
    for _ in range(100):
        if len(service.history) == 1:
            break
        page.wait_for_timeout(100)
    assert len(service.history) == 1
    print(f"screenshots in {shots}")
    assert len(list(shots.glob("*.png"))) == 4


@pytest.fixture(scope="module")
def public_app(tiny_studio, tmp_path_factory):
    service = make_service(tiny_studio.pipeline, tmp_path_factory.mktemp("public-browser-history"))
    demo = launch(service, public=True)
    yield demo.local_url, service
    demo.close()


def test_on_a_public_page_each_browser_keeps_its_own_history_across_reloads(browser, public_app):
    url, service = public_app
    mine = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = mine.new_page()
    page.set_default_timeout(TIMEOUT)
    page.goto(url)
    page.fill("#create-text textarea", "a blue kite")
    set_steps(page, 1)
    page.click("#create")
    page.wait_for_selector("#progress:has-text('Done: 1 steps')")
    page.reload()  # the browser keeps its token: the history is still there
    page.get_by_role("tab", name="History").click()
    page.wait_for_function("document.querySelectorAll('#history-gallery img').length == 1")
    assert "private to you" in page.inner_text("body") and str(service.history.folder) not in page.content()
    stranger = browser.new_context().new_page()  # another browser: its own, empty history
    stranger.set_default_timeout(TIMEOUT)
    stranger.goto(url)
    stranger.get_by_role("tab", name="History").click()
    stranger.wait_for_selector("text=private to you")
    assert stranger.locator("#history-gallery img").count() == 0
    assert len(service.history) == 1
    mine.close()


def test_every_tab_at_desktop_and_phone_widths(browser, local_app, tmp_path):
    """Screenshots of every tab at 1280 and 390 px; on a phone all six tabs fit and Create is on screen."""
    app_url, _ = local_app
    tabs = ["Create", "Describe", "Hear", "Search", "Morph", "History"]
    for width, height in ((1280, 1000), (390, 844)):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(TIMEOUT)
        page.goto(app_url)
        page.wait_for_selector("#create")
        assert [page.get_by_role("tab", name=name).is_visible() for name in tabs] == [True] * 6  # none behind a "More tabs" menu
        assert not page.get_by_label("More tabs").is_visible()
        create = page.locator("#create").bounding_box()
        assert create["y"] >= 0 and create["y"] + create["height"] <= height  # reachable without scrolling
        for index, name in enumerate(tabs, start=1):
            page.get_by_role("tab", name=name).click()
            page.wait_for_timeout(300)
            page.screenshot(path=tmp_path / f"{width}-{index}-{name.lower()}.png", full_page=True)
        assert not page.locator("#create").is_visible()  # the phone's Create bar belongs to its tab only
        page.get_by_role("tab", name="Describe").click()
        page.locator("#describe-image").locator("xpath=following::button[.//img][1]").click()  # "Try a picture": the first example
        page.wait_for_selector("#describe-image img")
        page.close()
    print(f"screenshots in {tmp_path}")
    assert len(list(tmp_path.glob("*.png"))) == 12
