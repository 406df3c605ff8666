"""Readers in JupyterLab get the primer's nglview widget, rendered.

The test starts JupyterLab on 127.0.0.1 (a free port, a random token, its own configuration and
runtime folders) in a temporary folder holding a two-cell notebook: a setup cell that computes
what the primer's nglview cell needs (the map and model paths and the 1% contour level), and
that cell itself, copied from ``notebooks/00_maps_and_models.ipynb``. Headless Chromium opens
the notebook, runs both cells, and the widget's WebGL canvas must draw. The server and its
kernels are stopped at the end, whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import BROWSER_ARGS, chromium_or_skip, ink

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.notebook

SETUP = """\
from IPython.display import display

from cryolab import data, metrics, viz
from cryolab.io import read_map
from cryolab.pipelines.primer import PROFILES

cfg = PROFILES["smoke"]
map_path, model_path = data.fetch(cfg.map_name), data.fetch(cfg.model_name)
level_1pct = metrics.contour_level(read_map(map_path).data, fraction=0.01)
"""


def _nglview_cell() -> str:
    nb = json.loads((ROOT / "notebooks" / "00_maps_and_models.ipynb").read_text())
    cells = ["".join(c["source"]) for c in nb["cells"]
             if c["cell_type"] == "code" and "nglview_map_and_model(" in "".join(c["source"])]
    assert len(cells) == 1, "the primer should have one nglview cell"
    return cells[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving ``tmp_path/work``; yields (url, token)."""
    work = tmp_path / "work"
    work.mkdir()
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
              "source": source} for source in (SETUP, _nglview_cell())]
    (work / "primer_nglview.ipynb").write_text(json.dumps(
        {"cells": cells, "metadata": {"kernelspec": {"name": "python3",
                                                     "display_name": "Python 3"}},
         "nbformat": 4, "nbformat_minor": 4}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log = (tmp_path / "jupyterlab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", "--allow-root",
         f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={work}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n"
                                + (tmp_path / "jupyterlab.log").read_text()[-2000:])
                time.sleep(0.5)
        yield url, token
    finally:
        server.send_signal(signal.SIGTERM)  # the server stops its kernels, then exits
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # the server's own session: it and its kernels
            server.wait()
        log.close()


def test_nglview_widget_renders_in_jupyterlab(jupyterlab):
    chromium = chromium_or_skip()
    playwright = pytest.importorskip("playwright.sync_api")
    url, token = jupyterlab
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{url}/lab/tree/primer_nglview.ipynb?token={token}")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=30_000)
        # the kernel is up when the status bar says so; then run both cells (Shift+Enter runs
        # a cell and moves on)
        page.locator(".jp-StatusBar-Widget", has_text="Idle").first.wait_for(timeout=30_000)
        page.locator(".jp-Notebook .jp-Cell .jp-InputArea-editor").first.click()
        page.keyboard.press("Escape")
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        canvas = page.locator(".jp-OutputArea-output canvas").first
        try:
            canvas.wait_for(timeout=40_000)
        except playwright.TimeoutError:
            page.locator(".jp-OutputArea-output").first.click()  # shows a JavaScript error
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            pytest.fail(f"no nglview canvas; the cells printed: {outputs}; errors: {errors}")
        drawn = 0.0
        for _ in range(20):  # NGL draws once the map's surface is computed
            page.wait_for_timeout(500)
            drawn = ink(canvas.screenshot())
            if drawn > 0.01:
                break
        browser.close()
    assert drawn > 0.01, f"the nglview canvas stayed blank ({drawn:.1%} drawn)"
