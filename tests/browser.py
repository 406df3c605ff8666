"""Headless Chromium for the browser tests (test_site.py, test_jupyterlab.py).

Without Chromium those tests are skipped, unless ``CRYOLAB_REQUIRE_BROWSER=1`` (as in CI).
WebGL (3Dmol.js, NGL) runs in Chromium's software renderer, so no GPU is needed.
"""

from __future__ import annotations

import io
import os
import shutil

import pytest

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_or_skip() -> str:
    """Path of a Chromium executable; skips (or fails, in CI) without one."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CRYOLAB_REQUIRE_BROWSER"):
        pytest.fail("CRYOLAB_REQUIRE_BROWSER is set but no Chromium was found")
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


def ink(png: bytes) -> float:
    """Fraction of a screenshot's pixels whose colour differs from its top-left pixel (the
    background): 0 for a blank canvas, whatever its background colour."""
    import matplotlib.image

    rgb = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
    return float((abs(rgb - rgb[0, 0]).sum(axis=-1) > 0.05).mean())
