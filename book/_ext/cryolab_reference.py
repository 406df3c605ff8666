"""The book's reference pages, generated from the package at build time.

Two directives, so the pages can never fall behind the code:

- ``cryolab-api``: one section per module of :mod:`cryolab` (found by walking the package),
  each an ``automodule`` with its public members, in the order of the layers (core, networks,
  tomography, chapter pipelines, commands);
- ``cryolab-cli``: the ``--help`` of ``cryolab`` and of every sub-command, from
  :func:`cryolab.cli.build_parser` (what a user sees in a terminal).
"""

from __future__ import annotations

import argparse
import pkgutil

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

#: Section order of the API page: (title, module-name prefix).
GROUPS = (
    ("Core: data, maps and metrics", "cryolab."),
    ("Networks", "cryolab.nn."),
    ("Tomography", "cryolab.tomo."),
    ("Chapter pipelines", "cryolab.pipelines."),
    ("Command-line handlers", "cryolab.commands."),
)


def _group(name: str) -> str:
    """The title of the section a module belongs to (the longest matching prefix)."""
    matches = [(len(prefix), title) for title, prefix in GROUPS if name.startswith(prefix)]
    return max(matches)[1]


def _modules() -> dict[str, bool]:
    """Every public module of the package, and whether it is a package (whose members are
    re-exports of its modules', documented there)."""
    import cryolab

    found = pkgutil.walk_packages(cryolab.__path__, "cryolab.")
    return {m.name: m.ispkg for m in sorted(found, key=lambda m: m.name)
            if not m.name.rpartition(".")[2].startswith("_")}


class ApiDirective(SphinxDirective):
    """``.. cryolab-api::`` — automodule sections for every module of the package."""

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        modules = _modules()
        for title, _ in GROUPS:
            members = [m for m in modules if _group(m) == title]
            if not members:
                continue
            lines += [f"## {title}", ""]
            for name in members:
                # autodoc writes reStructuredText: MyST reads it inside eval-rst
                options = [] if modules[name] else ["   :members:", "   :show-inheritance:"]
                lines += [f"### `{name}`", "", "```{eval-rst}", f".. automodule:: {name}",
                          *options, "```", ""]
        return _parse(self, lines, "cryolab-api")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


class CliDirective(SphinxDirective):
    """``.. cryolab-cli::`` — the help text of ``cryolab`` and of every sub-command."""

    def run(self) -> list[nodes.Node]:
        from cryolab.cli import build_parser

        parser = build_parser()
        lines = _help_block(parser)
        for name, sub in sorted(_subcommands(parser).items()):
            lines += [f"## `cryolab {name}`", "", *_help_block(sub)]
        return _parse(self, lines, "cryolab-cli")


def _help_block(parser: argparse.ArgumentParser) -> list[str]:
    """A parser's help as the lines of a literal block."""
    return ["````text", *parser.format_help().rstrip().splitlines(), "````", ""]


def _parse(directive: SphinxDirective, lines: list[str], source: str) -> list[nodes.Node]:
    """Parse the lines as the page's own markup (MyST Markdown: the reference pages are
    ``.md``), titles allowed, in the directive's place."""
    node = nodes.section()
    node.document = directive.state.document
    nested_parse_with_titles(directive.state, StringList(lines, source), node)
    return node.children


def setup(app) -> dict[str, bool]:
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.napoleon")
    app.add_directive("cryolab-api", ApiDirective)
    app.add_directive("cryolab-cli", CliDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
