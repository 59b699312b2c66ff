#!/usr/bin/env python
"""Synthetic captions per object (paper 3.4): several texts for every annotation of a dataset.

    python tools/synthesize_captions.py --dataset NAME --output FILE \\
        [--captioner builtin|module:attr] [--max-captions 5] [--overwrite]

Writes a COCO-format json (the source's boxes, masks and classes) whose annotations carry `texts`:
the annotation's own texts, if it had any, then up to --max-captions new ones from the captioner
(`mqformer_d2.data.captioning`). Crowd annotations get none. The unified mapper draws one of
`texts` per load. Register the output with
`mqformer_d2.data.synthetic.register_synthetic_captions` (logged at the end). An existing --output
is never replaced unless --overwrite is given.
"""
import argparse
import logging
import sys
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.utils.logger import setup_logger
from tqdm import tqdm

import mqformer_d2  # noqa: F401  (registers the datasets)
from mqformer_d2.data import synthetic
from mqformer_d2.data.images import read_image
from mqformer_d2.data.captioning import Captioner, load_captioner

logger = logging.getLogger("mqformer_d2.tools.synthesize_captions")


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="registered dataset whose objects are captioned")
    parser.add_argument("--output", required=True, help="COCO json to write")
    parser.add_argument("--captioner", default="builtin",
                        help="'builtin' (no model) or 'module:attr' (a Captioner, or fn(crop, box) -> list[str])")
    parser.add_argument("--max-captions", type=int, default=5, help="new captions per object, at most")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return parser


def class_name(annotation: Dict, prompts: Sequence[str], dataset: str, image_id) -> str:
    """The text naming an annotation's class: text_prompts[category_id], else its first text."""
    if annotation.get("category_id") is not None:
        return prompts[annotation["category_id"]]
    if annotation.get("texts"):
        return annotation["texts"][0]
    raise ValueError(f"dataset '{dataset}', image {image_id}: an annotation has neither category_id nor texts")


def caption_image(captioner: Captioner, record: Dict, prompts: Sequence[str], dataset: str,
                  max_captions: int) -> List[List[str]]:
    """Per annotation of the record, its new captions (none for crowd annotations)."""
    annotations = record.get("annotations")
    if annotations is None:
        raise ValueError(f"dataset '{dataset}', image {record['image_id']}: no 'annotations' (semantic-only "
                         "datasets have no objects to caption)")
    objects = [j for j, ann in enumerate(annotations) if not ann.get("iscrowd", 0) and "bbox" in ann]
    if not objects:
        return [[] for _ in annotations]
    image = read_image(record["file_name"], format="RGB")
    utils.check_image_size(record, image)
    inputs = [dict(annotations[j], class_name=class_name(annotations[j], prompts, dataset, record["image_id"]))
              for j in objects]
    captions = captioner.caption(image, inputs)
    if len(captions) != len(inputs):
        raise ValueError(f"captioner {type(captioner).__name__} returned {len(captions)} caption lists for "
                         f"{len(inputs)} objects (dataset '{dataset}', image {record['image_id']})")
    out = [[] for _ in annotations]
    for j, texts in zip(objects, captions):
        out[j] = [str(t) for t in texts if str(t).strip()][:max_captions]
    return out


def captioned_annotations(record: Dict, captions: List[List[str]], to_dataset_id: Dict[int, int]) -> List[Dict]:
    """The record's annotations as COCO annotations, their existing texts first, then the new ones."""
    out = []
    for ann, texts in zip(record.get("annotations", []), captions):
        coco = synthetic.coco_base_annotation(ann, record["image_id"], to_dataset_id)
        merged = list(dict.fromkeys(list(ann.get("texts") or []) + texts))
        if merged:
            coco["texts"] = merged
        out.append(coco)
    return out


def synthesize_captions(dataset: str, output: str, captioner_spec: str = "builtin", max_captions: int = 5,
                        overwrite: bool = False) -> Dict:
    """Caption every object of `dataset` and write `output`. Returns the written json."""
    synthetic.check_output_path(output, overwrite)
    if dataset not in DatasetCatalog.list():
        raise KeyError(f"--dataset '{dataset}' is not a registered dataset")
    if max_captions < 1:
        raise ValueError(f"--max-captions must be positive, got {max_captions}")
    captioner = load_captioner(captioner_spec, max_captions)
    dicts = DatasetCatalog.get(dataset)
    metadata = MetadataCatalog.get(dataset)
    prompts = list(metadata.get("text_prompts", None) or [])
    categories, to_dataset_id = synthetic.category_table(metadata, dataset)
    image_root = synthetic.image_root_of(dicts, metadata)
    annotations = []
    for record in tqdm(dicts, desc=f"captions of {dataset}", unit="image"):
        captions = caption_image(captioner, record, prompts, dataset, max_captions)
        annotations.extend(captioned_annotations(record, captions, to_dataset_id))
    data = {
        "info": {"mqformer_synthetic": {"tool": "synthesize_captions", "source_dataset": dataset,
                                        "captioner": captioner_spec, "max_captions": max_captions,
                                        "image_root": image_root}},
        "images": [synthetic.coco_image(record, image_root) for record in dicts],
        "categories": categories,
        "annotations": synthetic.number_annotations(annotations),
    }
    synthetic.write_json_atomic(output, data)
    name = synthetic.captions_dataset_name(dataset)
    logger.info("wrote %s (%d images, %d annotations); %s", output, len(dicts), len(annotations),
                synthetic.registration_hint("register_synthetic_captions", name, output, image_root, dataset))
    return data


def run(argv: Sequence[str]) -> Dict:
    args = argument_parser().parse_args(list(argv))
    setup_logger(name="mqformer_d2")
    return synthesize_captions(args.dataset, args.output, args.captioner, args.max_captions, args.overwrite)


if __name__ == "__main__":
    run(sys.argv[1:])
