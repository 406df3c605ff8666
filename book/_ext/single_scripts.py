"""Keep one copy of each script a page loads.

sphinx-thebe 0.3.1 adds its inline configuration (``const THEBE_JS_URL = ...``) every time
Sphinx emits ``env-before-read-docs``, which a Jupyter Book build does more than once; a page
that declares the same ``const`` twice throws a SyntaxError in the browser (the site test
catches it). This extension drops exact duplicates from each page's script list.
"""

from __future__ import annotations

from typing import Any


def _unique_scripts(app, pagename: str, templatename: str, context: dict[str, Any], doctree):
    seen: set[str] = set()
    unique = []
    for script in context.get("script_files", []):
        # inline scripts carry filename None or "" depending on who added them
        filename = getattr(script, "filename", script) or ""
        key = repr((filename, sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique  # the builder's own list, restored after each page


def setup(app) -> dict[str, bool]:
    # after every theme and extension has added its scripts
    app.connect("html-page-context", _unique_scripts, priority=100_000)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
