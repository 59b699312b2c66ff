"""Joint training on several datasets of different tasks, drawn with per-dataset ratios."""
import itertools
import logging
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from detectron2.data import DatasetCatalog, build_detection_train_loader
from detectron2.utils import comm
from torch.utils.data import Sampler

from .annotation_checks import check_annotations, check_image_files
from .detectron2_datasets import adapt_detectron2_dataset

logger = logging.getLogger(__name__)


def load_tagged_dataset_dicts(names: Sequence[str], bad_annotations: str = "warn",
                              training: bool = False) -> Tuple[List[dict], List[int]]:
    """Concatenate the dicts of several registered datasets, each tagged with its `dataset_name`
    (the mapper reads the dataset's metadata through it). Returns (dicts, size of each dataset).

    Bad annotations are reported and handled (`annotation_checks.check_annotations`), errors
    with `bad_annotations` "error" in `training`; training sets must also have all their image
    files and at least one usable target."""
    all_dicts, sizes = [], []
    for name in names:
        dicts = DatasetCatalog.get(name)
        if len(dicts) == 0:
            raise ValueError(f"dataset '{name}' is empty")
        adapt_detectron2_dataset(name, dicts)  # task and text prompts of detectron2-style registrations
        if training:
            check_image_files(name, dicts)
        check_annotations(name, dicts, bad_annotations if training else "warn", training)
        for record in dicts:
            record["dataset_name"] = name
        all_dicts.extend(dicts)
        sizes.append(len(dicts))
        logger.info("dataset '%s': %d images", name, len(dicts))
    return all_dicts, sizes


class DatasetRatioSampler(Sampler):
    """Infinite sampler over concatenated datasets: each index is drawn by first picking a dataset
    with probability proportional to its ratio, then an image of it uniformly at random.

    Like detectron2's TrainingSampler, every worker generates the same stream from a shared seed
    and takes every world_size-th element starting at its rank.
    """

    def __init__(self, dataset_sizes: Sequence[int], ratios: Sequence[float], seed: Optional[int] = None):
        if len(dataset_sizes) != len(ratios):
            raise ValueError(f"DATASETS.TRAIN_SAMPLING_RATIOS has {len(ratios)} entries for "
                             f"{len(dataset_sizes)} datasets in DATASETS.TRAIN")
        if any(r < 0 for r in ratios) or sum(ratios) <= 0:
            raise ValueError(f"DATASETS.TRAIN_SAMPLING_RATIOS must be non-negative with a positive sum, got {list(ratios)}")
        self.sizes = torch.tensor(list(dataset_sizes), dtype=torch.int64)
        self.offsets = torch.cat([self.sizes.new_zeros(1), self.sizes.cumsum(0)[:-1]])
        self.probabilities = torch.tensor(list(ratios), dtype=torch.float64) / sum(ratios)
        self.seed = int(comm.shared_random_seed() if seed is None else seed)
        self.rank, self.world_size = comm.get_rank(), comm.get_world_size()

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self.rank, None, self.world_size)

    def _infinite_indices(self, chunk: int = 4096) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            datasets = torch.multinomial(self.probabilities, chunk, replacement=True, generator=generator)
            within = (torch.rand(chunk, generator=generator, dtype=torch.float64) * self.sizes[datasets]).long()
            yield from (self.offsets[datasets] + within).tolist()


def build_unified_train_loader(cfg, mapper):
    """Training loader over all of cfg.DATASETS.TRAIN, each image through `mapper` (which reads each
    image's own dataset metadata), sampled with cfg.DATASETS.TRAIN_SAMPLING_RATIOS. Before any
    step: missing image files and training sets without a usable target are errors, bad
    annotations are reported, or errors with cfg.DATALOADER.BAD_ANNOTATIONS "error"."""
    dicts, sizes = load_tagged_dataset_dicts(cfg.DATASETS.TRAIN, cfg.DATALOADER.BAD_ANNOTATIONS, training=True)
    ratios = list(cfg.DATASETS.TRAIN_SAMPLING_RATIOS) or [float(s) for s in sizes]
    sampler = DatasetRatioSampler(sizes, ratios, seed=cfg.SEED if cfg.SEED >= 0 else None)
    return build_detection_train_loader(
        dataset=dicts,
        mapper=mapper,
        sampler=sampler,
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )
