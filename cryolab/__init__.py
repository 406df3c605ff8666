"""cryolab: simulators, models and metrics for learning from synthetic structural-biology data.

The package serves the cryolab book: each chapter's notebook imports from here. Modules that do
not train networks (io, data, density, degrade, metrics, tomo, afm) import without torch.
"""

__version__ = "0.1.0"
