"""Augmentations, built from detectron2's transforms."""
from typing import List

from detectron2.data import transforms as T


def build_augmentations(cfg, is_train: bool) -> List[T.Augmentation]:
    """Training: large-scale jitter (random resize within [MIN_SCALE, MAX_SCALE] x IMAGE_SIZE,
    random crop / pad to IMAGE_SIZE squared) plus a horizontal flip when INPUT.RANDOM_FLIP is
    "horizontal". Evaluation: resize the shortest edge to INPUT.MIN_SIZE_TEST (longest edge at most
    INPUT.MAX_SIZE_TEST)."""
    if not is_train:
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)]
    size = cfg.INPUT.IMAGE_SIZE
    augmentations = [
        T.ResizeScale(cfg.INPUT.MIN_SCALE, cfg.INPUT.MAX_SCALE, target_height=size, target_width=size),
        T.FixedSizeCrop(crop_size=(size, size)),
    ]
    if cfg.INPUT.RANDOM_FLIP == "horizontal":
        augmentations.append(T.RandomFlip(horizontal=True, vertical=False))
    elif cfg.INPUT.RANDOM_FLIP != "none":
        raise ValueError(f"INPUT.RANDOM_FLIP: expected 'horizontal' or 'none', got '{cfg.INPUT.RANDOM_FLIP}'")
    return augmentations
