"""Visual Genome as detection data (boxes + free-form text, no masks), unified format.

Read from the original release (no conversion) under ``$DETECTRON2_DATASETS/visual_genome``:
``image_data.json`` (sizes, urls), ``objects.json`` (boxes with object names),
``region_descriptions.json`` (boxes with region phrases), and the images in ``VG_100K/`` and
``VG_100K_2/`` (the folder of each image is the one named in its url).

Registered (training only, ``evaluator_type`` None):

- ``visual_genome_objects_train``: one target per object, ``texts`` = its cleaned names;
- ``visual_genome_regions_train``: one target per region, ``texts`` = [its phrase].

Targets carry ``texts`` and no ``category_id``; ``text_prompts`` is empty (the vocabulary is
free-form, so a mapper draws negatives from other images' texts, not from a class list).
"""
import os
from collections import defaultdict
from typing import Dict, List

from detectron2.structures import BoxMode

from .common import clean_class_names, load_json, register_dataset, require_dir

VG_DIR = "visual_genome"


def _image_id(entry: dict) -> int:
    """Visual Genome files name the image id ``image_id`` or ``id`` depending on file/version."""
    return entry["image_id"] if "image_id" in entry else entry["id"]


def box_target(item: dict, texts: List[str]) -> dict:
    """A box-only unified target from a VG object/region (``x``, ``y``, ``w``/``width``...)."""
    width = item.get("w", item.get("width"))
    height = item.get("h", item.get("height"))
    return {
        "bbox": [float(item["x"]), float(item["y"]), float(width), float(height)],
        "bbox_mode": BoxMode.XYWH_ABS,
        "texts": texts,
        "has_box": True,
        "iscrowd": 0,
    }


def _image_records(root: str) -> Dict[int, dict]:
    base = os.path.join(root, VG_DIR)
    records = {}
    for image in load_json(os.path.join(base, "image_data.json")):
        folder, file_name = image["url"].split("/")[-2:]
        image_id = _image_id(image)
        records[image_id] = {
            "file_name": os.path.join(base, folder, file_name),
            "height": image["height"],
            "width": image["width"],
            "image_id": image_id,
        }
    return records


def _attach(records: Dict[int, dict], targets: Dict[int, List[dict]]) -> List[dict]:
    """Records (sorted by id) of the images that have at least one target."""
    out = []
    for image_id in sorted(targets):
        if image_id in records and targets[image_id]:
            out.append(dict(records[image_id], annotations=targets[image_id]))
    return out


def load_visual_genome(root: str, kind: str) -> List[dict]:
    """Visual Genome under ``root``; ``kind`` is ``"objects"`` (object names) or ``"regions"``
    (region phrases). Boxes with no area and targets with no text are dropped."""
    base = os.path.join(root, VG_DIR)
    records = _image_records(root)
    if records:  # the image folder named by the first url must exist
        require_dir(os.path.dirname(next(iter(records.values()))["file_name"]))
    source = "objects.json" if kind == "objects" else "region_descriptions.json"
    targets = defaultdict(list)
    for entry in load_json(os.path.join(base, source)):
        items = entry["objects"] if kind == "objects" else entry["regions"]
        for item in items:
            if kind == "objects":
                texts = sorted(set(t for t in clean_class_names(item.get("names", [])) if t))
            else:
                texts = [item["phrase"].strip()] if item.get("phrase", "").strip() else []
            target = box_target(item, texts)
            if texts and target["bbox"][2] > 0 and target["bbox"][3] > 0:
                targets[_image_id(entry)].append(target)
    return _attach(records, targets)


def register_visual_genome(root: str) -> None:
    """Register ``visual_genome_{objects,regions}_train`` rooted at ``root``."""
    base = os.path.join(root, VG_DIR)
    for kind in ("objects", "regions"):
        register_dataset(
            f"visual_genome_{kind}_train",
            lambda k=kind: load_visual_genome(root, k),
            task="detection",
            evaluator_type=None,
            text_prompts=[],
            image_root=base,
        )
