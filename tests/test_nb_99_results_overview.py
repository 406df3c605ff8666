"""The results overview reads every chapter's smoke metrics and fills one row per claim."""

import os

import pytest

from cryolab.pipelines.overview import CLAIMS

pytestmark = pytest.mark.notebook
CHAPTERS = sorted({c.notebook for c in CLAIMS})


def test_smoke(run_notebook):
    for chapter in CHAPTERS:  # the overview summarises runs of the same profile
        run_notebook(chapter)
    m = run_notebook("99_results_overview")
    assert m["_wall_seconds"] < 90
    assert len(m["claims"]) == len(CLAIMS)
    for row in m["claims"]:
        if "Topaz" in row["claim"] and not os.environ.get("CRYOLAB_TOPAZ_PYTHON"):
            # Topaz-Denoise runs only from its own environment (chapter 05 says why it skipped)
            assert row["ours, CPU (smoke)"] is None and row["holds (CPU)"] == "not run"
            continue
        assert isinstance(row["ours, CPU (smoke)"], float), row["claim"]
        assert row["holds (CPU)"] in ("yes", "no")
    assert m["n_holding"] == sum(r["holds (CPU)"] == "yes" for r in m["claims"])
