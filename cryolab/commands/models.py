"""``cryolab models [NAME]``: the trained models shipped with cryolab, and their cards.

Without a name, one line per shipped model (:func:`cryolab.weights.available`): its name, the
task it does, its size and how it was trained. With a name, the whole model card as JSON
(:func:`cryolab.weights.card`): architecture, training data, training run and evaluation.
"""

from __future__ import annotations

import argparse
import json

from .. import weights

__all__ = ["register"]


def _summary(name: str) -> str:
    card = weights.card(name)
    training = card.get("training", {})
    megabytes = weights.path(name).stat().st_size / 1e6
    parameters = card.get("architecture", {}).get("parameters")
    size = f"{megabytes:.1f} MB" + (f", {parameters:,} parameters" if parameters else "")
    minutes = training.get("wall_seconds")
    trained = ", ".join(str(part) for part in (
        training.get("profile") and f"{training['profile']} profile",
        training.get("epochs") and f"{training['epochs']} epochs",
        minutes and f"{minutes / 60:.0f} min",
        training.get("hardware"),
    ) if part)
    return f"{name}\t{card.get('task', '')}\n\t{size}; trained: {trained}"


def _run(args: argparse.Namespace) -> int:
    if args.name:
        weights.path(args.name)  # one-line error for an unknown name
        print(json.dumps(weights.card(args.name), indent=1, ensure_ascii=False))
        return 0
    names = weights.available()
    for name in names:
        print(_summary(name))
    print(f"{len(names)} shipped models; `cryolab models NAME` shows one card")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cryolab models``."""
    p = subparsers.add_parser(
        "models", help="list the trained models shipped with cryolab (or show one card)",
        description="Without NAME: every shipped model, its task, size and training. "
        "With NAME: its model card as JSON.",
    )
    p.add_argument("name", nargs="?", default=None, help="a shipped model (see the list)")
    p.set_defaults(func=_run)
