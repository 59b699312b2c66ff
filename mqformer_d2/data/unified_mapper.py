"""The one dataset mapper of every task: dataset dict (docs/data_format.md) -> model input."""
import copy
import logging
import random
from typing import List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .augmentation import build_augmentations
from .datasets.panoptic import panoptic_annotations
from .images import read_image, read_label_map
from .targets import (
    annotation_to_target,
    count_horizontal_flips,
    semantic_targets,
    targets_to_instances,
    transform_mask,
)
from .text_utils import build_vocabulary, choose_text, mirror_sentence

logger = logging.getLogger(__name__)


class UnifiedDatasetMapper:
    """Maps a unified dataset dict to the model's input dict.

    The dict must carry `dataset_name` (the multi-dataset loader adds it): the dataset's metadata,
    not its name, says what to do (`task`, `text_prompts`, `ignore_label`). Output keys:
    `image` (3, H, W) uint8, `height`, `width`, `task`, `vocabulary`, and in training `instances`
    with gt_boxes, gt_masks, gt_text_ids, gt_has_mask, gt_has_box; in evaluation `sem_seg_output`
    "scores" (semantic outputs as (T, H, W) score maps, whatever their size).

    Training: targets come from `annotations`, or, for semantic dicts without annotations, one per
    class of `sem_seg_file_name`, or, for panoptic dicts without annotations (detectron2's
    `pan_seg_file_name` + `segments_info`), one per segment of the panoptic PNG; free-form texts
    are drawn at random per load (synthetic captions) and have "left"/"right" swapped when the
    image was flipped; the vocabulary is the positive texts plus sampled negative class names (never the class of one of the image's annotations;
    none for referring images). Evaluation: the image is resized only; the vocabulary
    is the dataset's `text_prompts`, or for referring data every sentence of every annotation in
    order (with `sentence_annotation_index`), and the original `annotations` are kept for evaluators.
    """

    @configurable
    def __init__(self, is_train: bool, *, augmentations: List[T.Augmentation], image_format: str,
                 num_negative_texts: int = 20, rng: Optional[random.Random] = None):
        """
        Args:
            is_train: training (targets, random texts and negatives) or evaluation mapping.
            augmentations: applied in order to the image and its masks (detectron2 transforms).
            image_format: detectron2 image format, e.g. "RGB" or "BGR".
            num_negative_texts: negative texts sampled into each training image's vocabulary.
            rng: source of randomness for texts; default the `random` module, which detectron2
                reseeds in each data-loader worker.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.num_negative_texts = num_negative_texts
        self.rng = rng if rng is not None else random
        logger.info("UnifiedDatasetMapper(%s) augmentations: %s", "train" if is_train else "eval", augmentations)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "is_train": is_train,
            "augmentations": build_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "num_negative_texts": cfg.INPUT.NUM_NEGATIVE_TEXTS,
        }

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)  # the caller's dict is reused across epochs
        name = dataset_dict.get("dataset_name")
        if name is None:
            raise KeyError(f"{dataset_dict.get('file_name')}: dataset dict has no 'dataset_name' "
                           "(load it through mqformer_d2.data.load_tagged_dataset_dicts)")
        metadata = MetadataCatalog.get(name)
        image = read_image(dataset_dict["file_name"], format=self.image_format)  # 16-bit scaled
        utils.check_image_size(dataset_dict, image)
        sem_seg = self._read_sem_seg(dataset_dict)
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        transforms = self._augment(aug_input, dataset_dict)
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        dataset_dict["task"] = metadata.task
        if not self.is_train:
            dataset_dict["sem_seg_output"] = "scores"  # the (T, H, W) map SemSegEvaluator reads
            return self._add_eval_vocabulary(dataset_dict, metadata)
        self._add_training_targets(dataset_dict, metadata, transforms, aug_input)
        return dataset_dict

    def _augment(self, aug_input: T.AugInput, dataset_dict: dict) -> T.TransformList:
        """The augmentations applied in place; an image they cannot resize (e.g. 2x2000 pixels,
        whose short side would shrink to 0) is a ValueError naming the dataset, the file and its size."""
        try:
            return self.augmentations(aug_input)
        except (ValueError, ZeroDivisionError) as e:
            height, width = aug_input.image.shape[:2]
            raise ValueError(f"dataset '{dataset_dict['dataset_name']}', image {dataset_dict['file_name']} "
                             f"({height}x{width} pixels): the augmentations cannot resize it, it is too "
                             f"small or too elongated ({type(e).__name__}: {e})") from e

    def _read_sem_seg(self, dataset_dict: dict) -> Optional[np.ndarray]:
        """The semantic label map, needed only to build training targets of semantic datasets.
        Float64: detectron2 resizes non-uint8 maps with nearest interpolation (exact for labels up
        to 2**53) and cannot resize int64; also holds 16-bit maps (e.g. Pascal Context 459)."""
        if not self.is_train or "annotations" in dataset_dict or "sem_seg_file_name" not in dataset_dict:
            return None
        return read_label_map(dataset_dict["sem_seg_file_name"])

    def _add_training_targets(self, dataset_dict, metadata, transforms, aug_input):
        image_size = aug_input.image.shape[:2]
        prompts = list(metadata.get("text_prompts", []))
        annotations = dataset_dict.pop("annotations", None)
        if annotations is None:  # detectron2's panoptic records: segments of the PNG, read now
            annotations = panoptic_annotations(dataset_dict)["annotations"] if "pan_seg_file_name" in dataset_dict else []
        if aug_input.sem_seg is not None:
            targets = self._semantic_targets(aug_input.sem_seg, transforms, dataset_dict, metadata, prompts)
            del dataset_dict["sem_seg_file_name"]  # read into the targets
        else:
            targets = self._annotation_targets(annotations, transforms, dataset_dict, prompts, image_size)
        candidates = self._negative_candidates(annotations, prompts, metadata.task)
        vocabulary = build_vocabulary([t.text for t in targets], candidates, self.num_negative_texts, self.rng)
        dataset_dict["vocabulary"] = vocabulary
        dataset_dict["instances"] = targets_to_instances(targets, vocabulary, image_size)

    def _annotation_targets(self, annotations, transforms, dataset_dict, prompts, image_size):
        original_size = (dataset_dict["height"], dataset_dict["width"])
        flipped = count_horizontal_flips(transforms) % 2 == 1
        targets = []
        for index, annotation in enumerate(annotations):
            if annotation.get("iscrowd", 0):
                continue
            text = choose_text(annotation, prompts, self.rng, dataset_dict["dataset_name"])
            if flipped and annotation.get("texts"):
                text = mirror_sentence(text)
            try:
                target = annotation_to_target(annotation, text, transforms, original_size, image_size)
            except (ValueError, TypeError, KeyError) as e:  # e.g. an invalid RLE
                raise ValueError(f"dataset '{dataset_dict['dataset_name']}', image {dataset_dict['file_name']}, "
                                 f"annotation {index} (id {annotation.get('id')}): {e}") from e
            if target is not None:
                targets.append(target)
        return targets

    @staticmethod
    def _semantic_targets(sem_seg, transforms, dataset_dict, metadata, prompts):
        ignore_label = metadata.get("ignore_label", 255)
        labels = sem_seg.astype(np.int64)
        # Padding fills label maps with 255, a real class of large vocabularies (e.g. Pascal
        # Context 459): mark the padded pixels as ignored whatever ignore_label is.
        inside = transform_mask(np.ones((dataset_dict["height"], dataset_dict["width"]), np.uint8), transforms)
        labels[~inside] = ignore_label
        try:
            return semantic_targets(labels, prompts, ignore_label)
        except ValueError as e:
            raise ValueError(f"dataset '{dataset_dict['dataset_name']}', label file "
                             f"{dataset_dict['sem_seg_file_name']}: {e} and is not its ignore_label "
                             f"{ignore_label}") from e

    @staticmethod
    def _negative_candidates(annotations, prompts, task):
        """Class names that may be sampled as negatives: none for referring images (their
        unannotated objects can be of any class), and never the class of one of the image's own
        annotations (a free-form text may be its positive while its class name is also true)."""
        if task == "referring":
            return []
        own = {prompts[a["category_id"]] for a in annotations
               if a.get("category_id") is not None and 0 <= a["category_id"] < len(prompts)}
        return [text for text in prompts if text not in own]

    @staticmethod
    def _add_eval_vocabulary(dataset_dict, metadata):
        if metadata.task != "referring":
            dataset_dict["vocabulary"] = list(metadata.text_prompts)
            return dataset_dict
        sentences, owners = [], []
        for index, annotation in enumerate(dataset_dict.get("annotations", [])):
            for sentence in annotation.get("texts", []):
                sentences.append(sentence)
                owners.append(index)
        dataset_dict["vocabulary"] = sentences
        dataset_dict["sentence_annotation_index"] = owners
        return dataset_dict
