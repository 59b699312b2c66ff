"""Helpers shared by the evaluators: vocabulary -> dataset category ids, ground-truth masks from
unified annotations, and gathering per-process records to the main process.

Id spaces (docs/data_format.md): a model output's class index points into the input's
``vocabulary``; a dataset's *contiguous* id is an index into its ``metadata.text_prompts`` (the
``category_id`` of its unified annotations and the value of its semantic label maps); its
*dataset* ids are the ids of its json files, tied to contiguous ids by
``thing_dataset_id_to_contiguous_id`` / ``stuff_dataset_id_to_contiguous_id``.
"""
import itertools
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.utils import comm

from ..data.masks import decode_segmentation

logger = logging.getLogger(__name__)


def dataset_text_prompts(dataset_name: str) -> List[str]:
    """``text_prompts`` of a dataset's metadata, or a KeyError naming the dataset."""
    prompts = MetadataCatalog.get(dataset_name).get("text_prompts", None)
    if not prompts:
        raise KeyError(f"dataset {dataset_name!r}: metadata has no 'text_prompts' (needed to map "
                       "predicted vocabulary indices to the dataset's categories)")
    return list(prompts)


class VocabularyMapper:
    """Maps an input's vocabulary indices to the dataset's contiguous category ids.

    The eval mapper sets ``vocabulary = text_prompts`` (identity). Any other vocabulary (reordered,
    a subset, extra texts) is matched by text: a text that is not one of the dataset's prompts maps
    to -1 (its predictions are dropped); a text that names two different categories is an error.
    Lookups are cached per distinct vocabulary.
    """

    def __init__(self, dataset_name: str):
        self.dataset_name = dataset_name
        self.text_prompts = dataset_text_prompts(dataset_name)
        self._positions: Dict[str, List[int]] = {}
        for index, text in enumerate(self.text_prompts):
            self._positions.setdefault(text, []).append(index)
        self._cache: Dict[Tuple[str, ...], np.ndarray] = {}

    def __call__(self, vocabulary: Optional[Sequence[str]]) -> np.ndarray:
        """(len(vocabulary),) int64 contiguous ids (-1 = not a dataset category). ``None`` means
        the dataset's own prompts."""
        key = tuple(self.text_prompts if vocabulary is None else vocabulary)
        if key not in self._cache:
            self._cache[key] = self._lookup(key)
        return self._cache[key]

    def _lookup(self, vocabulary: Tuple[str, ...]) -> np.ndarray:
        if list(vocabulary) == self.text_prompts:
            return np.arange(len(vocabulary), dtype=np.int64)
        ids = np.full(len(vocabulary), -1, dtype=np.int64)
        for index, text in enumerate(vocabulary):
            positions = self._positions.get(text, [])
            if len(positions) > 1:
                raise ValueError(
                    f"dataset {self.dataset_name!r}: vocabulary text {text!r} matches categories "
                    f"{positions} of its text_prompts; pass the dataset's text_prompts unchanged"
                )
            if positions:
                ids[index] = positions[0]
        return ids


def annotation_mask(annotation: dict, height: int, width: int, where: str) -> np.ndarray:
    """(height, width) bool mask of a unified annotation's ``segmentation`` (polygons, RLE with
    list / str / bytes counts), decoded by `data.masks.decode_segmentation`; errors name `where`."""
    segmentation = annotation.get("segmentation")
    if segmentation is None:
        raise ValueError(f"{where}: annotation has no 'segmentation' (a mask is needed)")
    try:
        return decode_segmentation(segmentation, height, width).astype(bool)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error


def gather_records(records: list) -> Optional[list]:
    """All processes' ``records`` concatenated on the main process; None on the others.

    Every process must call it (it synchronises), as detectron2's evaluators do."""
    comm.synchronize()
    gathered = comm.gather(records, dst=0)
    if not comm.is_main_process():
        return None
    return list(itertools.chain(*gathered))


def total_over_processes(count: int) -> int:
    """Sum of ``count`` over all processes (every process must call it)."""
    return int(sum(comm.all_gather(int(count))))
