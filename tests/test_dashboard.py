"""`nas dashboard` in a real headless Chromium (Debian's chromium + chromedriver, installed by `make test`)."""

import json
import signal
import socket
import subprocess
import sys
import urllib.request

import optuna
import pytest
from conftest import ARTIFACTS, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dashboard(tiny_study):
    _, storage, name = tiny_study
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nas", "dashboard", "--study", name, "--storage", storage,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = f"http://127.0.0.1:{port}"

    def listed():
        assert proc.poll() is None, proc.stderr.read()
        try:
            return json.load(urllib.request.urlopen(f"{url}/api/studies", timeout=2))["study_summaries"]
        except OSError:  # not listening yet
            return None

    studies = wait_for(listed, "the dashboard to answer", 60)
    yield proc, f"{url}/dashboard/studies/{studies[0]['study_id']}", optuna.load_study(study_name=name, storage=storage)
    if proc.poll() is None:
        proc.kill()


def test_dashboard_shows_metric_names_front_and_infeasible_trials(dashboard):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    proc, url, study = dashboard
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        browser.get(url)

        def front_traces():  # plotly renders after the API answers
            # the first plot on the study page is the Pareto front: {hover label: number of points}
            traces = browser.execute_script(
                "const p = document.querySelector('.js-plotly-plot'); if (!p || !p.data) return {};"
                "return Object.fromEntries(p.data.filter(t => t.hovertemplate)"
                ".map(t => [t.hovertemplate.match(/<extra>(.*)<\\/extra>/)[1], (t.x || []).length]));")
            return traces if "Best Trial" in traces else None

        traces = wait_for(front_traces, "the front's plot with its best trials", 60)
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
        text = browser.find_element("tag name", "body").text
    finally:
        browser.quit()
    infeasible = [t for t in study.trials if t.user_attrs.get("kind") == "infeasible"]
    assert infeasible
    for name in study.metric_names:
        assert name in text, name
    assert traces.get("Best Trial") == len(study.best_trials)
    assert traces.get("Infeasible Trial") == len(infeasible)

    proc.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in stderr
    assert "http://127.0.0.1:" in stderr


def test_dashboard_for_a_missing_study_says_so(nas_cli, tiny_study):
    _, storage, _ = tiny_study
    out = nas_cli("dashboard", "--study", "nope", "--storage", storage, "--port", str(free_port()))
    assert out.returncode == 2 and "no study 'nope'" in out.stderr
