"""``flan browse`` driven in a real headless Chromium (Selenium + the system browser).

Skips with the reason when Selenium, ``chromium`` or ``chromedriver`` is missing
locally; CI installs them (.ci/run) and sets ``FLAN_REQUIRE_BROWSER=1`` so a
missing browser fails there instead of skipping. Screenshots of every page go
to a temporary folder, or to ``$FLAN_SCREENSHOTS`` when set (the README's come
from ``FLAN_SCREENSHOTS=docs/screenshots pytest tests/test_browse_browser.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from flan_data.browse.server import BrowseApp, make_server, url_of


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for exe in ("chromium", "chromedriver"):
        if not (shutil.which(exe) or (exe == "chromium" and shutil.which("chromium-browser"))):
            return f"no {exe} on PATH (apt-get install -y chromium chromium-driver)"
    return None


_MISSING = _browser_missing()
if _MISSING and os.environ.get("FLAN_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"FLAN_REQUIRE_BROWSER=1 but the browser tests cannot run: {_MISSING}")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(_MISSING is not None, reason=f"browser tests skipped: {_MISSING}"),
]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    from flan_data import Catalog
    from flan_data.export import export_mixture

    out = tmp_path_factory.mktemp("browse") / "demo"
    export_mixture(Catalog.load(), "demo", out, total=120, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def server(export_dir):
    from flan_data import Catalog

    app = BrowseApp(Catalog.load(), export_dir)
    srv = make_server(app, "127.0.0.1", 0)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield url_of(srv).rstrip("/")
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1440,1000", "--hide-scrollbars", "--no-first-run"):  # fmt: skip
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _wait(driver, cond, timeout=30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(cond)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("FLAN_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _shot(driver, shots: Path, name: str) -> None:
    """Save a screenshot and check it is a real, non-blank PNG."""
    p = shots / f"{name}.png"
    driver.save_screenshot(str(p))
    data = p.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, p


def _cli_render(*args: str) -> list[dict]:
    from click.testing import CliRunner

    from flan_data.cli import main

    r = CliRunner().invoke(main, ["render", *args, "--json"])
    assert r.exit_code == 0, r.output
    return [json.loads(ln) for ln in r.output.splitlines() if ln.strip()]


def _preview_done(driver, key_part: str):
    def cond(d):
        form = d.find_element("id", "preview-form")
        return form.get_attribute("data-state") == "done" and key_part in (
            form.get_attribute("data-key") or ""
        )

    _wait(driver, cond)


def test_catalog_filter_task_preview_matches_flan_render(driver, shots, server):
    from selenium.webdriver.common.by import By

    driver.get(server + "/")
    assert driver.title.startswith("Catalog")
    chips = driver.find_elements(By.CSS_SELECTOR, "#collections .chip[data-collection]")
    assert {c.get_attribute("data-collection") for c in chips} >= {"flan2021", "niv2", "cot"}
    _shot(driver, shots, "catalog")
    box = driver.find_element(By.ID, "q")
    box.send_keys("anli_r1")
    driver.find_element(By.ID, "filter-go").click()
    _wait(driver, lambda d: "q=anli_r1" in d.current_url)
    links = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "a.task-link")]
    assert "anli_r1" in links and all("anli_r1" in x for x in links)
    driver.find_element(By.LINK_TEXT, "anli_r1").click()
    _wait(driver, lambda d: d.find_element(By.ID, "task-name").text == "anli_r1")
    # the first preview (defaults) equals flan render's first row
    _preview_done(driver, "format=zs_opt")
    first = _cli_render("anli_r1", "-n", "1", "--format", "zs_opt", "--seed", "0")[0]
    assert driver.find_element(By.ID, "p-inputs").get_attribute("textContent") == first["inputs"]
    # change format and seed (and the row): the preview re-renders to flan render's output
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "p-format")).select_by_visible_text("fs_opt")
    seed = driver.find_element(By.ID, "p-seed")
    seed.clear()
    seed.send_keys("7")
    row = driver.find_element(By.ID, "p-row")
    row.clear()
    row.send_keys("2")
    driver.find_element(By.ID, "p-go").click()
    _preview_done(driver, "format=fs_opt&seed=7&template=&row=2")
    want = _cli_render("anli_r1", "-n", "3", "--format", "fs_opt", "--seed", "7")[2]
    assert driver.find_element(By.ID, "p-inputs").get_attribute("textContent") == want["inputs"]
    assert driver.find_element(By.ID, "p-targets").get_attribute("textContent") == want["targets"]
    assert want["template_id"] in driver.find_element(By.ID, "p-meta").text
    # a fixed template, too
    tid = want["template_id"]
    other = next(o.get_attribute("value") for o in driver.find_elements(By.CSS_SELECTOR, "#p-template option")
                 if o.get_attribute("value") not in ("", tid))  # fmt: skip
    Select(driver.find_element(By.ID, "p-template")).select_by_value(other)
    _preview_done(driver, f"template={other}")
    fixed = _cli_render(
        "anli_r1", "-n", "3", "--format", "fs_opt", "--seed", "7", "--template", other
    )[2]
    assert driver.find_element(By.ID, "p-inputs").get_attribute("textContent") == fixed["inputs"]
    # variables are highlighted in the template text
    assert driver.find_elements(By.CSS_SELECTOR, "article.template .tok-var")
    driver.execute_script("window.scrollTo(0, 0)")
    driver.set_window_size(1440, 1500)
    try:
        _shot(driver, shots, "task")
    finally:
        driver.set_window_size(1440, 1000)


def test_task_with_options_field_and_cot(driver, shots, server):
    from selenium.webdriver.common.by import By

    driver.get(server + "/task/cot_gsm8k?format=cot&seed=3")
    _preview_done(driver, "format=cot&seed=3")
    want = _cli_render("cot_gsm8k", "-n", "1", "--format", "cot", "--seed", "3")[0]
    assert driver.find_element(By.ID, "p-inputs").get_attribute("textContent") == want["inputs"]
    assert driver.find_element(By.ID, "p-error").get_attribute("hidden") is not None


def test_mixture_page(driver, shots, server):
    from selenium.webdriver.common.by import By

    driver.get(server + "/mixture/demo")
    assert "Mixture demo" in driver.title
    summary = driver.find_element(By.ID, "plan-summary").text
    assert "examples from" in summary
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    _shot(driver, shots, "mixture")
    total = driver.find_element(By.ID, "m-total")
    total.clear()
    total.send_keys("500")
    driver.find_element(By.ID, "m-exclude").send_keys("niv2")
    driver.find_element(By.ID, "m-go").click()
    _wait(driver, lambda d: "total=500" in d.current_url)
    assert driver.find_element(By.ID, "plan-summary").text.startswith("500 examples")
    names = [
        r.text for r in driver.find_elements(By.CSS_SELECTOR, "#plan-collections td:first-child")
    ]
    assert "niv2" not in names and "flan2021" in names


def test_export_page(driver, shots, server, export_dir):
    from selenium.webdriver.common.by import By

    driver.get(server + "/export")
    assert "verify: OK" in driver.find_element(By.ID, "verify-status").text
    manifest = json.loads((export_dir / "manifest.json").read_text())
    assert manifest["num_rows"] == 120
    cells = driver.find_elements(By.CSS_SELECTOR, "#counts tbody tr")
    assert len(cells) == len(manifest["counts"])
    assert len(driver.find_elements(By.CSS_SELECTOR, "#rows article.row")) == 20
    assert driver.find_elements(By.CSS_SELECTOR, ".hist svg rect")
    _shot(driver, shots, "export")
    driver.find_element(By.ID, "rows-next").click()
    _wait(driver, lambda d: "page=2" in d.current_url)
    assert "#20" in driver.find_element(By.ID, "rows").text
    # a count cell opens exactly those rows
    link = driver.find_element(By.CSS_SELECTOR, "#counts a.rows-link")
    n = int(link.text)
    task = link.find_element(By.XPATH, "./ancestor::tr/td[1]").text
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    _wait(driver, lambda d: "task=" in d.current_url)
    heads = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "#rows .rowhead")]
    assert len(heads) == min(n, 20) and all(f" {task} " in h + " " for h in heads)


def test_unknown_task_and_traversal_pages(driver, shots, server):
    from selenium.webdriver.common.by import By

    driver.get(server + "/task/anli_r9")
    assert driver.find_element(By.ID, "error-title").text.startswith("404")
    assert "anli_r1" in driver.find_element(By.ID, "error-message").text  # the closest names
    _shot(driver, shots, "not_found")
    driver.get(server + "/export?shard=..%2F..%2Fetc%2Fpasswd")
    assert driver.find_element(By.ID, "error-title").text.startswith("400")
    assert "root:" not in driver.page_source
