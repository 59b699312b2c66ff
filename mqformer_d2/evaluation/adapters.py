"""Open-vocabulary adapters around detectron2's own evaluators.

Each adapter converts the model's outputs (class indices into the input's ``vocabulary``) into
what the wrapped evaluator expects, then hands them over; the metrics are detectron2's:

- :class:`OpenVocabCOCOEvaluator` -> ``COCOEvaluator`` (pycocotools' official COCOeval): thing
  predictions only (stuff and unknown texts are dropped), classes re-indexed to the thing order;
- :class:`OpenVocabLVISEvaluator` -> ``LVISEvaluator`` (needs the ``lvis`` package);
- :class:`OpenVocabSemSegEvaluator` -> ``SemSegEvaluator``: score maps reordered to the dataset's
  class order;
- :class:`OpenVocabPanopticEvaluator` -> ``COCOPanopticEvaluator`` (panopticapi): segment
  categories given as the panoptic json's ids.

The wrapped evaluator is built on the first output it gets (so a panoptic dataset's instance and
semantic evaluators cost nothing when the model outputs panoptic segmentation only). An adapter
that no process fed returns ``{}``.
"""
import logging
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.data.datasets.coco import convert_to_coco_json
from detectron2.evaluation import (
    COCOEvaluator,
    COCOPanopticEvaluator,
    DatasetEvaluator,
    LVISEvaluator,
    SemSegEvaluator,
)
from detectron2.evaluation.sem_seg_evaluation import load_image_into_numpy_array

from .common import VocabularyMapper, total_over_processes

logger = logging.getLogger(__name__)

# Suffix of the MetadataCatalog entry holding the thing-only view that COCOEvaluator reads.
THING_VIEW_SUFFIX = "@mqformer_thing_view"


class _OutputAdapter(DatasetEvaluator):
    """Forwards the outputs carrying ``output_key`` to a lazily built detectron2 evaluator, after
    :meth:`convert`. Subclasses define ``output_key``, :meth:`build_inner` and :meth:`convert`."""

    output_key = ""

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None):
        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.vocabulary_mapper = VocabularyMapper(dataset_name)
        self._inner: Optional[DatasetEvaluator] = None
        self._num_outputs = 0

    def build_inner(self) -> DatasetEvaluator:
        raise NotImplementedError

    def convert(self, input: dict, output: dict) -> dict:
        """The output in the wrapped evaluator's format (class ids in the dataset's space)."""
        raise NotImplementedError

    @property
    def inner(self) -> DatasetEvaluator:
        """The wrapped detectron2 evaluator (built and reset on first use)."""
        if self._inner is None:
            self._inner = self.build_inner()
            self._inner.reset()
        return self._inner

    def reset(self):
        self._num_outputs = 0
        if self._inner is not None:
            self._inner.reset()

    def process(self, inputs, outputs):
        pairs = [(x, y) for x, y in zip(inputs, outputs) if self.output_key in y]
        if not pairs:
            return
        self._num_outputs += len(pairs)
        self.inner.process([x for x, _ in pairs], [self.convert(x, y) for x, y in pairs])

    def evaluate(self):
        if total_over_processes(self._num_outputs) == 0:
            logger.info("%s: no %r outputs for %s; nothing to evaluate.",
                        type(self).__name__, self.output_key, self.dataset_name)
            return {}
        return self.inner.evaluate() or {}

    def contiguous_ids(self, input: dict) -> torch.Tensor:
        """(len(vocabulary),) int64: the input's vocabulary index -> contiguous id (-1 = none)."""
        return torch.from_numpy(self.vocabulary_mapper(input.get("vocabulary")))


def thing_classes_by_dataset_id(dataset_name: str) -> List[Tuple[int, int]]:
    """(dataset id, contiguous id) of each thing class, sorted by dataset id.

    Things are ``thing_dataset_id_to_contiguous_id``; without that map every text prompt is a
    thing whose dataset id is its index."""
    metadata = MetadataCatalog.get(dataset_name)
    id_map = metadata.get("thing_dataset_id_to_contiguous_id", None)
    if id_map is None:
        id_map = {i: i for i in range(len(metadata.text_prompts))}
    return sorted(id_map.items())


def register_thing_view(dataset_name: str, output_dir: Optional[str]) -> str:
    """Register (again) a metadata entry that shows COCOEvaluator the dataset's things as classes
    ``0..N-1`` (by dataset id), with its COCO json; return its name.

    A dataset without ``json_file`` is converted with detectron2's ``convert_to_coco_json`` into
    ``output_dir`` (it then needs ``thing_classes``)."""
    metadata = MetadataCatalog.get(dataset_name)
    json_file = metadata.get("json_file", None)
    if json_file is None:
        if output_dir is None or metadata.get("thing_classes", None) is None:
            raise ValueError(
                f"dataset {dataset_name!r}: instance evaluation needs metadata 'json_file', or "
                "'thing_classes' and an output folder to write the converted COCO json into"
            )
        json_file = os.path.join(output_dir, f"{dataset_name}_coco_format.json")
        convert_to_coco_json(dataset_name, json_file)
    ordered = thing_classes_by_dataset_id(dataset_name)
    prompts = metadata.text_prompts
    view_name = dataset_name + THING_VIEW_SUFFIX
    if view_name in MetadataCatalog.list():
        MetadataCatalog.remove(view_name)
    MetadataCatalog.get(view_name).set(
        json_file=json_file,
        thing_classes=[prompts[c] if c < len(prompts) else str(d) for d, c in ordered],
        thing_dataset_id_to_contiguous_id={d: rank for rank, (d, _) in enumerate(ordered)},
    )
    return view_name


def _relabel_instances(instances, classes: torch.Tensor):
    """Instances (on CPU) whose pred_classes become ``classes[pred_classes]``; -1 are dropped."""
    instances = instances.to("cpu")
    if len(instances) == 0:
        return instances
    new_classes = classes[instances.pred_classes.long()]
    kept = instances[new_classes >= 0]
    kept.pred_classes = new_classes[new_classes >= 0]
    return kept


class OpenVocabCOCOEvaluator(_OutputAdapter):
    """COCO box / mask AP of ``instances`` through detectron2's ``COCOEvaluator`` (official
    pycocotools COCOeval, ``use_fast_impl=False``) for any vocabulary.

    Predictions of non-thing texts (stuff of a panoptic vocabulary, texts that are not dataset
    categories) are dropped; thing classes are re-indexed to the thing-only view registered by
    :func:`register_thing_view`, so a things+stuff vocabulary works."""

    output_key = "instances"

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None, tasks=None,
                 max_dets_per_image: Optional[int] = None):
        super().__init__(dataset_name, output_dir)
        self.tasks = tasks
        self.max_dets_per_image = max_dets_per_image
        # contiguous id -> thing rank; one extra -1 entry so that index -1 (unknown text) maps to -1
        num_prompts = len(self.vocabulary_mapper.text_prompts)
        self._contiguous_to_rank = torch.full((num_prompts + 1,), -1, dtype=torch.int64)
        for rank, (_, contiguous) in enumerate(thing_classes_by_dataset_id(dataset_name)):
            if not 0 <= contiguous < num_prompts:
                raise ValueError(f"dataset {dataset_name!r}: thing_dataset_id_to_contiguous_id "
                                 f"maps to {contiguous}, outside its {num_prompts} text_prompts")
            self._contiguous_to_rank[contiguous] = rank

    def build_inner(self) -> DatasetEvaluator:
        view_name = register_thing_view(self.dataset_name, self.output_dir)
        return COCOEvaluator(view_name, self.tasks, True, self.output_dir,
                             max_dets_per_image=self.max_dets_per_image, use_fast_impl=False)

    def convert(self, input: dict, output: dict) -> dict:
        classes = self._contiguous_to_rank[self.contiguous_ids(input)]
        return {"instances": _relabel_instances(output["instances"], classes)}


class OpenVocabLVISEvaluator(_OutputAdapter):
    """LVIS AP of ``instances`` through detectron2's ``LVISEvaluator``; classes are mapped to the
    dataset's contiguous ids (the order of its ``text_prompts``)."""

    output_key = "instances"

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None):
        super().__init__(dataset_name, output_dir)
        try:
            import lvis  # noqa: F401
        except ImportError as error:
            raise ImportError(f"dataset {dataset_name!r}: LVIS evaluation needs the 'lvis' "
                              "package (pip install lvis)") from error

    def build_inner(self) -> DatasetEvaluator:
        return LVISEvaluator(self.dataset_name, None, True, self.output_dir)

    def convert(self, input: dict, output: dict) -> dict:
        return {"instances": _relabel_instances(output["instances"], self.contiguous_ids(input))}


def covers_every_class(dataset_name: str) -> bool:
    """Whether ``stuff_dataset_id_to_contiguous_id`` is absent or maps onto every stuff class, as
    SemSegEvaluator requires (detectron2's COCO-panoptic metadata maps stuff only)."""
    metadata = MetadataCatalog.get(dataset_name)
    id_map = metadata.get("stuff_dataset_id_to_contiguous_id", None)
    if id_map is None:
        return True
    return set(id_map.values()) >= set(range(len(metadata.get("stuff_classes", []))))


class OpenVocabSemSegEvaluator(_OutputAdapter):
    """Semantic mIoU / fwIoU / pixel accuracy of ``sem_seg`` through detectron2's
    ``SemSegEvaluator``: the (T, H, W) scores over the vocabulary become (C, H, W) scores over the
    dataset's ``stuff_classes`` (a class absent from the vocabulary scores -inf)."""

    output_key = "sem_seg"

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None):
        super().__init__(dataset_name, output_dir)
        metadata = MetadataCatalog.get(dataset_name)
        stuff = metadata.get("stuff_classes", None)
        if stuff is None or len(stuff) != len(self.vocabulary_mapper.text_prompts):
            raise ValueError(
                f"dataset {dataset_name!r}: semantic evaluation needs metadata 'stuff_classes' "
                "with one entry per text prompt (label values index both)"
            )
        self.num_classes = len(stuff)
        if not covers_every_class(dataset_name):
            raise ValueError(
                f"dataset {dataset_name!r}: SemSegEvaluator needs "
                f"'stuff_dataset_id_to_contiguous_id' to map onto every one of its {len(stuff)} "
                "classes (things too) or to be absent"
            )

    def build_inner(self) -> DatasetEvaluator:
        return SemSegEvaluator(self.dataset_name, distributed=True, output_dir=self.output_dir,
                               sem_seg_loading_fn=self.load_ground_truth)

    def load_ground_truth(self, file_name: str, dtype=int) -> np.ndarray:
        """SemSegEvaluator's reading of a label PNG, plus a ValueError naming the dataset, the file
        and the values when a label is neither a class index (0..C-1) nor the ignore_label:
        SemSegEvaluator would count it in another class's cell (wrong mIoU) or fail reshaping."""
        labels = load_image_into_numpy_array(file_name, dtype=dtype)
        ignore_label = MetadataCatalog.get(self.dataset_name).ignore_label
        outside = ((labels < 0) | (labels >= self.num_classes)) & (labels != ignore_label)
        if outside.any():
            values = np.unique(labels[outside])
            raise ValueError(
                f"dataset {self.dataset_name!r}: ground-truth file {file_name} holds label(s) "
                f"{values[:10].tolist()} ({int(outside.sum())} pixels), outside its {self.num_classes} classes "
                f"(0..{self.num_classes - 1}) and not its ignore_label {ignore_label}")
        return labels

    def convert(self, input: dict, output: dict) -> dict:
        scores = output["sem_seg"]
        ids = self.contiguous_ids(input).to(scores.device)
        identity = torch.arange(self.num_classes, device=ids.device)
        if ids.numel() == self.num_classes and bool((ids == identity).all()):
            return {"sem_seg": scores}
        reordered = scores.new_full((self.num_classes, *scores.shape[1:]), float("-inf"))
        for text_index, contiguous in enumerate(ids.tolist()):
            if contiguous >= 0:
                reordered[contiguous] = torch.maximum(reordered[contiguous], scores[text_index])
        return {"sem_seg": reordered}


def contiguous_to_panoptic_ids(dataset_name: str) -> Dict[int, int]:
    """Contiguous id -> panoptic json category id (thing map first, then stuff map)."""
    metadata = MetadataCatalog.get(dataset_name)
    mapping = {}
    for key in ("thing_dataset_id_to_contiguous_id", "stuff_dataset_id_to_contiguous_id"):
        for dataset_id, contiguous in (metadata.get(key, None) or {}).items():
            mapping.setdefault(contiguous, dataset_id)
    if not mapping:
        raise ValueError(f"dataset {dataset_name!r}: panoptic evaluation needs metadata "
                         "'thing_dataset_id_to_contiguous_id' / 'stuff_dataset_id_to_contiguous_id'")
    return mapping


class OpenVocabPanopticEvaluator(_OutputAdapter):
    """PQ / SQ / RQ of ``panoptic_seg`` through detectron2's ``COCOPanopticEvaluator``
    (panopticapi). Segment categories become the panoptic json's ids (so the evaluator's own
    thing/stuff conversion is skipped); segments of texts outside the dataset become void."""

    output_key = "panoptic_seg"

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None):
        super().__init__(dataset_name, output_dir)
        metadata = MetadataCatalog.get(dataset_name)
        for key in ("panoptic_json", "panoptic_root"):
            if metadata.get(key, None) is None:
                raise ValueError(
                    f"dataset {dataset_name!r}: panoptic evaluation needs metadata {key!r}")
        self._panoptic_ids = contiguous_to_panoptic_ids(dataset_name)

    def build_inner(self) -> DatasetEvaluator:
        return COCOPanopticEvaluator(self.dataset_name, self.output_dir)

    def convert(self, input: dict, output: dict) -> dict:
        segment_ids, segments_info = output["panoptic_seg"]
        if segments_info is None:  # category * label_divisor + instance format: ids as they are
            return {"panoptic_seg": (segment_ids, None)}
        contiguous = self.contiguous_ids(input)
        segment_ids = segment_ids.to("cpu").clone()
        kept: List[dict] = []
        for segment in segments_info:
            category = int(contiguous[segment["category_id"]])
            panoptic_id = self._panoptic_ids.get(category)
            if panoptic_id is None:
                segment_ids[segment_ids == segment["id"]] = 0
                continue
            kept.append({"id": int(segment["id"]), "category_id": panoptic_id})
        return {"panoptic_seg": (segment_ids, kept)}


def thing_view_metadata(name: str) -> Metadata:
    """The registered thing view of dataset ``name`` (for inspection and tests)."""
    return MetadataCatalog.get(name + THING_VIEW_SUFFIX)


def drop_thing_view(name: str) -> None:
    """Remove dataset ``name``'s thing view from the MetadataCatalog, if registered."""
    if name + THING_VIEW_SUFFIX in MetadataCatalog.list():
        MetadataCatalog.remove(name + THING_VIEW_SUFFIX)


__all__ = [
    "OpenVocabCOCOEvaluator",
    "OpenVocabLVISEvaluator",
    "OpenVocabPanopticEvaluator",
    "OpenVocabSemSegEvaluator",
    "contiguous_to_panoptic_ids",
    "covers_every_class",
    "drop_thing_view",
    "register_thing_view",
    "thing_classes_by_dataset_id",
    "thing_view_metadata",
]
