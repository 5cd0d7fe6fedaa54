"""The page in a real browser: Debian's chromium, headless, driven by Selenium through Debian's chromedriver.

Nothing is downloaded: Selenium gets the driver and browser paths and SE_OFFLINE. Skips when chromium,
chromedriver or selenium is absent; fails instead under CI=true (CI installs them). The screenshot is a
test artefact under the test's tmp path; SAFESPEAK_SCREENSHOT=path also copies it there (the README's).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from serve_helpers import running_server, tiny_checkpoint, write_clips

TOKEN = "browser-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--window-size=1000,980",
    # a fake microphone (a beep) and no permission prompt, for the recording test
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
)  # fmt: skip


def _require(ok: bool, what: str) -> None:
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} — CI=true requires it (.ci/apt-packages.txt, the dev extra)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    _require(Path(CHROMIUM).is_file(), f"{CHROMIUM} not found (apt-get install chromium)")
    _require(Path(CHROMEDRIVER).is_file(), f"{CHROMEDRIVER} not found (apt-get install chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _require(False, "selenium is not installed (pip install -e '.[dev]')")
    for module in ("fastapi", "uvicorn", "httpx"):
        try:
            __import__(module)
        except ImportError:
            _require(False, f"{module} is not installed (pip install -e '.[deploy,dev]')")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for (or download) drivers
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Path]]]:
    root = tmp_path_factory.mktemp("page")
    cal = {"scale": 40.0, "offset": -0.1, "prior": 0.5}
    ckpt = tiny_checkpoint(root / "model", calibration=cal)
    clips = write_clips(root / "clips", (3.1,))
    x, sr = sf.read(clips[0], dtype="float32")  # a noisy stretch in the middle: windows that differ
    rng = np.random.default_rng(1)
    x[16_000:32_000] = np.clip(x[16_000:32_000] + 0.4 * rng.standard_normal(16_000), -1, 1)
    x[40_000:44_000] *= 0.05
    sf.write(clips[0], x, sr, subtype="PCM_16")
    (root / "notes.wav").write_text("these are notes, not audio\n" * 10)
    with running_server(ckpt, "--token", TOKEN, log=root / "server.log") as (url, _proc):
        yield url, [*clips, root / "notes.wav"]


def _upload(driver: object, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "file").send_keys(str(path))


def test_page_shows_the_verdict_score_and_one_mark_per_window(browser, served, tmp_path: Path) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, (clip, _) = served
    browser.get(url + "/")
    token = browser.find_element(By.ID, "token")
    token.clear()
    token.send_keys(TOKEN)
    _upload(browser, clip)
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "verdict").text.strip())
    files = {"file": (clip.name, clip.read_bytes())}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    api = httpx.post(url + "/v1/detect", files=files, headers=auth, timeout=120).json()

    verdict = browser.find_element(By.ID, "verdict")
    assert verdict.get_attribute("data-label") == api["label"]
    assert verdict.text.startswith({"bonafide": "Bona fide", "spoof": "Spoof"}[api["label"]])
    score = browser.find_element(By.ID, "score")
    assert float(score.get_attribute("data-score")) == api["score"]
    assert score.text == f"{api['score']:.4f}"
    assert browser.find_element(By.ID, "probability").text == f"{100 * api['probability']:.1f} %"

    marks = browser.find_elements(By.CSS_SELECTOR, "#timeline .window-mark")
    assert len(api["windows"]) == 7  # 3.1 s in 0.5 s windows, the last one aligned to the end
    assert [m.get_attribute("id") for m in marks] == [f"window-mark-{i}" for i in range(len(api["windows"]))]
    shown = [float(m.get_attribute("data-score")) for m in marks]
    assert shown == [w["score"] for w in api["windows"]]
    assert browser.find_elements(By.ID, "threshold-line")
    assert browser.find_elements(By.CSS_SELECTOR, "#timeline .waveform line"), "the waveform was not drawn"
    assert browser.execute_script("return sessionStorage.getItem('safespeak-token')") == TOKEN

    shot = tmp_path / "serve-page.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("SAFESPEAK_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["SAFESPEAK_SCREENSHOT"])


def test_page_shows_a_readable_error_for_a_file_that_is_not_audio(browser, served) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, (_, notes) = served
    browser.get(url + "/")
    _upload(browser, notes)
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert "notes.wav: not a readable audio file" in browser.find_element(By.ID, "error").text
    assert not browser.find_element(By.ID, "result").is_displayed()


def test_recording_and_drag_and_drop_reach_a_verdict(browser, served) -> None:
    import base64
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, (clip, _) = served
    browser.get(url + "/")
    token = browser.find_element(By.ID, "token")
    assert token.get_attribute("value") == TOKEN  # kept in sessionStorage from the first test
    # the fake microphone: MediaRecorder -> decodeAudioData -> 16-bit WAV encoded by the page -> server
    browser.find_element(By.ID, "record").click()
    WebDriverWait(browser, 10).until(lambda d: "Stop" in d.find_element(By.ID, "record").text)
    time.sleep(1.5)
    browser.find_element(By.ID, "record").click()

    def answered(d: object) -> bool:
        verdict, error = d.find_element(By.ID, "verdict"), d.find_element(By.ID, "error")
        return bool(verdict.text.strip()) or error.is_displayed()

    WebDriverWait(browser, 60).until(answered)
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "filename").text.startswith("recording.wav")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline .window-mark")) >= 2  # > 1 s of audio

    browser.get(url + "/")  # a file dropped on the drop zone (a DataTransfer built in the page)
    browser.execute_script(
        """const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.wav", { type: "audio/wav" }));
        const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true });
        document.getElementById("drop").dispatchEvent(drop);""",
        base64.b64encode(clip.read_bytes()).decode(),
    )
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "verdict").text.strip())
    assert browser.find_element(By.ID, "filename").text.startswith("dropped.wav")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timeline .window-mark")) == 7
