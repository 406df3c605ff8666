"""``cryolab fetch`` and ``cryolab data``: registered real data from the command line."""

from __future__ import annotations

import argparse
import importlib
import os
import time
from collections import Counter

from .. import data
from ..errors import ConfigError, DataError
from ..validation import option

#: The pipeline module of each chapter; its ``data_files()`` names the files the chapter reads.
CHAPTERS = {
    "00": "primer",
    "01": "struc2map",
    "02": "superres",
    "03": "sharpening",
    "04": "tomosim",
    "05": "tomolearn",
    "06": "afm_views",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``fetch`` and ``data`` (with ``data download``) to the command line."""
    fetch = sub.add_parser("fetch", help="fetch registered data files and print their paths")
    fetch.add_argument(
        "names", nargs="+", help="file names as in the catalogue, e.g. maps/emd_3488.map.gz"
    )
    fetch.set_defaults(func=_fetch)

    listing = sub.add_parser(
        "data",
        help="list registered data files, optionally filtered; 'data download' fetches them",
    )
    listing.add_argument("--kind", help="structure, map, template, tomogram, ...")
    listing.add_argument("--method", help="X-ray, EM, NMR, ...")
    listing.add_argument("--max-resolution", type=option("Å", gt=0, le=100),
                         help="best resolution in Å, at most")
    listing.add_argument("--pairs", action="store_true", help="list fitted map/model pairs")
    listing.set_defaults(func=_list)
    actions = listing.add_subparsers(dest="action", metavar="ACTION")
    download = actions.add_parser(
        "download",
        help="fetch what a chapter (or the whole book) needs into the user cache",
        description=(
            "Fetch registered files in parallel into the user cache (from $CRYOLAB_DATA_DIR, "
            "$CRYOLAB_DATA_URL, or each file's upstream source), checking every sha256. "
            "Files already present are only checked, so a second run resumes the first."
        ),
    )
    which = download.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--chapter", choices=sorted(CHAPTERS), help="the files one chapter's notebook reads"
    )
    which.add_argument("--all", action="store_true", help="every registered file")
    which.add_argument("names", nargs="*", default=[], help="registered file names")
    download.add_argument("--jobs", type=option("downloads", integer=True, ge=1, le=64),
                          default=4, help="parallel downloads (default 4)")
    download.set_defaults(func=_download)


def _fetch(args: argparse.Namespace) -> int:
    for name in args.names:
        print(data.fetch(name, progress=True))
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.pairs:
        table = data.pairs()
    else:
        table = data.find(kind=args.kind, method=args.method, max_resolution=args.max_resolution)
        table = table[["name", "kind", "method", "resolution_A", "upstream_kind"]]
    print(table.to_string(index=False))
    return 0


def chapter_files(chapter: str) -> list[str]:
    """The registered files chapter ``chapter`` ("00" ... "06") reads, as its pipeline says."""
    if chapter not in CHAPTERS:
        raise ConfigError(f"unknown chapter {chapter!r}; chapters: {', '.join(CHAPTERS)}")
    return importlib.import_module(f"cryolab.pipelines.{CHAPTERS[chapter]}").data_files()


def _download(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: give at least 1")
    if args.all:
        names = list(data.registry())
    elif args.chapter:
        names = chapter_files(args.chapter)
    else:
        names = args.names
    if not names:
        raise ConfigError("give --chapter NN, --all, or registered file names")
    start = time.perf_counter()
    results = data.download(names, jobs=args.jobs)
    seconds = time.perf_counter() - start
    failed = {n: r for n, r in results.items() if isinstance(r, DataError)}
    fetched = {n: r for n, r in results.items() if not isinstance(r, DataError)}
    for name, got in fetched.items():
        print(f"{name}\t{got.source}")
    sources = Counter(_origin(got.source) for got in fetched.values())
    size = sum(got.path.stat().st_size for got in fetched.values())
    print(
        f"{len(fetched)} of {len(names)} files ({size / 1e6:.1f} MB) in {seconds:.1f} s: "
        + ", ".join(f"{n} {source}" for source, n in sources.most_common())
    )
    for error in failed.values():
        print(f"failed: {error}")
    if failed:
        raise DataError(
            f"{len(failed)} of {len(names)} files could not be fetched (listed above); "
            "run the command again to resume"
        )
    return 0


def _origin(source: str) -> str:
    """Where a file came from, in a few words ("from PyPI (pip download)", "in the cache")."""
    mirror = os.environ.get(data.URL_VAR, "").strip().rstrip("/")
    if source == "cache":
        return "already in the cache"
    if source == data.ENV_VAR:
        return f"in {data.ENV_VAR}"
    if mirror and source.startswith(mirror + "/"):
        return f"from {data.URL_VAR}"
    if source.startswith("pypi:"):
        return "from PyPI (pip download)"
    if source.startswith(data.PACKAGE_SCHEME):
        return "from the cryolab package"
    if "://" in source:
        return f"from {source.split('/')[2]}"
    return "derived by cryolab"
