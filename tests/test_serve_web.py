"""The web page at ``/`` in a real headless Chromium against a real ``nvila-edge serve`` with an API key.

The page is driven like a user would: key typed in, a ``test://shapes`` stream and an alert added through the
forms, an image uploaded through the file picker and a question asked; the test waits for what a user would
see (the live preview, the alert's state badge, the streamed answer naming red).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import pytest
from served import ServerProcess

from nvila_edge.runtime.world.scene import Scene, Shape, render_scene

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)")

API_KEY = "page-test-key"
KEY_HEADER = {"Authorization": f"Bearer {API_KEY}"}
SOURCE = "test://shapes?width=320&height=240&fps=5"
ALERT_COLOURS = {"true": "rgba(211, 58, 44, 1)", "false": "rgba(31, 157, 85, 1)"}  # the page's --bad / --ok
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1300")


@pytest.fixture(scope="module")
def server(builtin_engines):
    process = ServerProcess(builtin_engines, "--api-key", API_KEY).start(wait_ready=False)
    deadline = time.monotonic() + 60
    while process.get("/readyz", headers=KEY_HEADER)[0] != 200:
        assert time.monotonic() < deadline, process.log()
        time.sleep(0.1)
    yield process
    assert process.stop() == 0, process.log()
    assert "Traceback" not in process.log()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        screenshots = os.environ.get("NVILA_EDGE_SCREENSHOTS")
        if screenshots:
            driver.save_screenshot(str(Path(screenshots) / "serve-page.png"))
        driver.quit()


@pytest.fixture
def red_circle_png(tmp_path) -> Path:
    scene = Scene(width=160, height=160, background="plain", seed=3, shapes=[Shape("circle", "red", 80, 80, 64)])
    path = tmp_path / "red-circle.png"
    cv2.imwrite(str(path), cv2.cvtColor(render_scene(scene), cv2.COLOR_RGB2BGR))
    return path


def wait_for(driver, condition, timeout_s: float, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(lambda d: condition(d))
    except TimeoutException:
        log = driver.find_element("id", "events").text
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; page events:\n{log}") from None


def test_page_adds_a_stream_and_an_alert_and_streams_a_chat_answer(server, browser, red_circle_png):
    from selenium.webdriver.common.by import By

    def element(css):
        return browser.find_element(By.CSS_SELECTOR, css)

    browser.get(server.url + "/")
    # Without the key the page says what is missing instead of showing nothing.
    wait_for(browser, lambda d: "API key" in element("#events").text, 10, "the page to ask for the API key")
    element("#key").send_keys(API_KEY + "\n")
    element("#key").send_keys("\t")  # the change event fires when the field loses focus
    wait_for(browser, lambda d: element("#events-state").get_attribute("data-state") == "live", 10, "the event feed")

    element("#stream-source").send_keys(SOURCE)
    element("#stream-name").send_keys("door")
    element("#add-stream button").click()
    card = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".stream"), 10, "the stream card")[0]
    assert card.find_element(By.CSS_SELECTOR, ".name").text == "door"
    wait_for(browser, lambda d: browser.execute_script(
        "return document.querySelector('.stream .preview').naturalWidth") == 320, 20, "the live preview")

    element("#alert-prompt").send_keys("Is there a red circle?")
    element("#add-alert button").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".stream li.alert"), 10, "the alert row")
    badge = element(".stream li.alert .state")
    wait_for(browser, lambda d: badge.get_attribute("data-state") in ("true", "false"), 40, "the alert's state")
    assert badge.value_of_css_property("background-color") == ALERT_COLOURS[badge.get_attribute("data-state")]

    element("#chat-image").send_keys(str(red_circle_png))
    element("#chat-prompt").send_keys("What colour is the circle?")
    element("#chat-send").click()
    wait_for(browser, lambda d: "tokens" in element("#chat-usage").text, 40, "the streamed answer to finish")
    assert "red" in element("#chat-answer").text.lower()
    assert element("#chat .msg").text == ""

    # A stream another client adds shows up through the event feed, under its name.
    assert server.post("/v1/streams", {"source": SOURCE, "name": "yard"}, headers=KEY_HEADER)[0] == 201
    wait_for(browser, lambda d: "yard" in [e.text for e in d.find_elements(By.CSS_SELECTOR, ".stream .name")], 10,
             "the stream added elsewhere")
