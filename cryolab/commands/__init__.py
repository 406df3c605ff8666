"""Sub-commands of the ``cryolab`` command line, one module per family.

Each module defines ``register(subparsers)`` which adds its parsers and sets ``func`` to a
callable taking the parsed arguments and returning an exit status.
"""
