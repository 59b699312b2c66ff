"""Checks run before any training or evaluation work: every dataset named in the config exists."""
import difflib

from detectron2.data import DatasetCatalog


def check_dataset_names(cfg) -> None:
    """Raise a KeyError naming the config key, the unknown dataset name and the closest registered
    names when a DATASETS.TRAIN or DATASETS.TEST entry is not registered (e.g. a typo), so that it
    fails at start-up rather than at the first evaluation after training."""
    registered = DatasetCatalog.list()
    for key in ("TRAIN", "TEST"):
        for name in cfg.DATASETS[key]:
            if name not in registered:
                close = difflib.get_close_matches(name, registered, n=5, cutoff=0.6)
                raise KeyError(f"DATASETS.{key}: dataset {name!r} is not registered; closest registered "
                               f"names: {close or 'none'} (see datasets/README.md and docs/usage.md)")
