"""``cryolab fetch`` and ``cryolab data``: registered real data from the command line."""

from __future__ import annotations

import argparse

from .. import data


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fetch`` and ``data`` to the command line."""
    fetch = sub.add_parser("fetch", help="fetch registered data files and print their paths")
    fetch.add_argument(
        "names", nargs="+", help="file names as in the catalogue, e.g. maps/emd_3488.map.gz"
    )
    fetch.set_defaults(func=_fetch)

    listing = sub.add_parser("data", help="list registered data files, optionally filtered")
    listing.add_argument("--kind", help="structure, map, template, tomogram, ...")
    listing.add_argument("--method", help="X-ray, EM, NMR, ...")
    listing.add_argument("--max-resolution", type=float, help="best resolution in Å, at most")
    listing.add_argument("--pairs", action="store_true", help="list fitted map/model pairs")
    listing.set_defaults(func=_list)


def _fetch(args: argparse.Namespace) -> int:
    for name in args.names:
        print(data.fetch(name, progress=True))
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.pairs:
        table = data.pairs()
    else:
        table = data.find(kind=args.kind, method=args.method, max_resolution=args.max_resolution)
        table = table[["name", "kind", "method", "resolution_A", "url_kind"]]
    print(table.to_string(index=False))
    return 0
