"""The ``cryolab`` command line.

Each module of :mod:`cryolab.commands` adds its sub-commands through ``register(subparsers)``.
Whatever goes wrong, the user sees one line on stderr and no traceback:

- a usage error (unknown option, a value out of range) and every ``cryolab`` error exit 2;
- a file-system fault while writing (disk full, permission) or running out of memory exit 1;
- Ctrl-C prints ``interrupted`` and exits 130 (128 + SIGINT), and leaves no partial output,
  since every output is written under a temporary name first (:mod:`cryolab.outputs`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__, commands
from .errors import CryolabError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line that names the option."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = _Parser(
        prog="cryolab", description="Simulate maps, tomograms and AFM images; apply models."
    )
    parser.add_argument("--version", action="version", version=f"cryolab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{info.name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    prefix = f"cryolab {args.command}"
    try:
        return int(args.func(args) or 0)
    except CryolabError as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout left (`cryolab models | head`): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - flushed at exit, never read
        return 0
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prefix}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{prefix}: error: out of memory; try a smaller input or larger voxels",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
