"""Data: dataset registrations (unified (text, box, mask) format), mappers and loaders.

See docs/data_format.md for the format every dataset is loaded into.
"""
from . import datasets  # noqa: F401  (registers the dataset families)
from .multi_dataset import DatasetRatioSampler, build_unified_train_loader, load_tagged_dataset_dicts
from .unified_mapper import UnifiedDatasetMapper
from . import shapes  # registers the built-in synthetic benchmark mqformer_shapes_* (lazily)
