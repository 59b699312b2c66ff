"""Synthetic captions per object (paper 3.4): several texts for every annotation of a dataset.

`synthesize_captions` writes a synthetic COCO json (the source's boxes, masks and classes) whose
annotations carry ``texts``: the annotation's own texts, if it had any, then up to
``max_captions`` new ones from a captioner (`captioners.py`). Crowd annotations get none. The
unified mapper draws one of ``texts`` per load. `tools/synthesize_captions.py` is its command line.
"""
import logging
from typing import Dict, List, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import detection_utils as utils
from tqdm import tqdm

from ..data.images import read_image
from . import outputs
from .captioners import Captioner, load_captioner
from .registration import captions_dataset_name, registration_hint

logger = logging.getLogger(__name__)


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
    where = f"dataset '{dataset}', image {record['image_id']}: an annotation"
    inputs = [dict(annotations[j], class_name=outputs.prompt_text(annotations[j], prompts, where)) for j in objects]
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
        coco = outputs.coco_base_annotation(ann, record["image_id"], to_dataset_id)
        merged = list(dict.fromkeys(list(ann.get("texts") or []) + texts))
        if merged:
            coco["texts"] = merged
        out.append(coco)
    return out


def synthesize_captions(dataset: str, output: str, captioner_spec: str = "builtin", max_captions: int = 5,
                        overwrite: bool = False) -> Dict:
    """Caption every object of `dataset` and write `output` (never replacing it unless
    `overwrite`). `captioner_spec`: see `captioners.load_captioner`. Returns the written json."""
    outputs.check_output_path(output, overwrite)
    outputs.require_registered(dataset)
    if max_captions < 1:
        raise ValueError(f"--max-captions must be positive, got {max_captions}")
    captioner = load_captioner(captioner_spec, max_captions)
    dicts = DatasetCatalog.get(dataset)
    metadata = MetadataCatalog.get(dataset)
    prompts = list(metadata.get("text_prompts", None) or [])
    categories, to_dataset_id = outputs.category_table(metadata, dataset)
    image_root = outputs.image_root_of(dicts, metadata)
    annotations = []
    for record in tqdm(dicts, desc=f"captions of {dataset}", unit="image"):
        captions = caption_image(captioner, record, prompts, dataset, max_captions)
        annotations.extend(captioned_annotations(record, captions, to_dataset_id))
    provenance = {"tool": "synthesize_captions", "source_dataset": dataset, "captioner": captioner_spec,
                  "max_captions": max_captions, "image_root": image_root}
    data = outputs.synthetic_coco_file(provenance, dicts, image_root, categories, annotations)
    outputs.write_json_atomic(output, data)
    logger.info("wrote %s (%d images, %d annotations); %s", output, len(dicts), len(annotations),
                registration_hint("register_synthetic_captions", captions_dataset_name(dataset), output, image_root,
                                  dataset))
    return data
