"""Synthetic data engine (paper 3.4): masks synthesized from boxes and captions per object, written
as COCO-format json files that register as training datasets. (Not to be confused with the
built-in synthetic *benchmark*, `mqformer_d2.data.shapes`.)

masks.py        `synthesize_masks(MaskSynthesisJob(...))`: box-prompted masks, sharded and resumable
progress.py     the resumable progress folder ``<output>.parts/`` of a mask run
captions.py     `synthesize_captions(dataset, output, ...)`: several texts per object
captioners.py   the captioners: built-in (measured attributes) or any image-to-text callable
outputs.py      output checks, the json's parts from a source's unified dicts, atomic writing
registration.py a synthetic file (or a subset of a dataset) as a registered dataset
quality.py      a synthetic mask's quality, and a file's mean IoU against real masks

`tools/synthesize_masks.py` and `tools/synthesize_captions.py` are the command lines. Both write a
COCO-format json made from a registered dataset's unified dicts:

* ``images``: ``id`` (the source ``image_id``), ``file_name`` (relative to the image root),
  ``height``, ``width``;
* ``categories``: the source metadata's classes (``thing_classes``, else ``text_prompts``), with the
  source's dataset ids (``thing_dataset_id_to_contiguous_id``) when it has them, else ids
  ``0 .. n-1``;
* ``annotations``: ``id``, ``image_id``, ``category_id``, ``bbox`` (XYWH), ``area``, ``iscrowd``,
  optional ``segmentation`` (COCO RLE), ``texts``; the mask tool adds per mask ``score`` and
  ``quality``, the caption tool adds ``texts``;
* ``info``: provenance (``mqformer_synthetic``: the tool, the source dataset, its settings).
"""
from .captioners import BuiltinCaptioner, CallableCaptioner, Captioner, load_captioner
from .captions import synthesize_captions
from .masks import MaskSynthesisJob, synthesize_masks
from .quality import box_iou_of_mask, synthetic_mask_iou
from .registration import (
    captions_dataset_name,
    load_synthetic_json,
    masks_dataset_name,
    register_subset,
    register_synthetic_captions,
    register_synthetic_masks,
    synthetic_image_root,
)

__all__ = [
    "BuiltinCaptioner", "CallableCaptioner", "Captioner", "MaskSynthesisJob", "box_iou_of_mask",
    "captions_dataset_name", "load_captioner", "load_synthetic_json", "masks_dataset_name", "register_subset",
    "register_synthetic_captions", "register_synthetic_masks", "synthesize_captions", "synthesize_masks",
    "synthetic_image_root", "synthetic_mask_iou",
]
