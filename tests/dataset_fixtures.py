"""Datasets registered for one test only: unique names, removed from both catalogs afterwards."""
import uuid
from contextlib import contextmanager

from detectron2.data import DatasetCatalog, MetadataCatalog

from mqformer_d2.data.datasets import register_dataset


@contextmanager
def temporary_datasets(prefix: str):
    """Yields register(loader, **metadata) -> a new name `<prefix>_<hex>` registered with
    `register_dataset`; every name it gave is unregistered on exit."""
    names = []

    def register(loader, **metadata):
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        register_dataset(name, loader, **metadata)
        names.append(name)
        return name

    try:
        yield register
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
