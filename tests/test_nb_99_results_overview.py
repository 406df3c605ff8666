"""The results overview reads every chapter's smoke metrics and fills one row per claim."""

import os

import pytest

from cryolab.pipelines.overview import CLAIMS, SHIPPED

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
    # the claims of chapter 01 read the shipped generator's five-fold means from its card
    assert all(isinstance(r["shipped model"], float) for r in m["claims"][:2])
    # one row per shipped model; its verdict is that of its two numbers
    assert [r["model"] for r in m["shipped"]] == [c.model for c in SHIPPED]
    for row, check in zip(m["shipped"], SHIPPED, strict=True):
        shipped, trained = row["shipped model"], row["trained in the smoke run"]
        if shipped is None or trained is None:
            assert row["shipped at least as good"] == "not measured", row["model"]
        else:
            ok = check.at_least_as_good(shipped, trained)
            assert row["shipped at least as good"] == ("yes" if ok else "no"), row["model"]
