"""SeginW (Segmentation in the Wild, 25 datasets) and any suite in its exact on-disk format.

Layout of a suite under its root (SeginW: ``$DETECTRON2_DATASETS/seginw``)::

    <Name>/{train,train_10shot,valid}/_annotations_min1cat.coco.json   # COCO instances
    <Name>/{train,train_10shot,valid}/*.jpg                             # the images beside it

Category ids in the json are 0-based and contiguous; the json's category names are the text
prompts (read from the json when first needed, see :class:`JsonCategoryMetadata`). Each dataset
is registered as ``<prefix>_<Name>_{train,train_10shot,val}`` with ``evaluator_type="seginw"``
(COCO segm AP per dataset, mean/median over the suite) and what detectron2's ``COCOEvaluator``
needs (``json_file``, ``thing_classes``, ``thing_dataset_id_to_contiguous_id``).
``register_seginw_style_suite`` / ``load_seginw_split`` serve other suites in this format (e.g. the
project's synthetic open-vocabulary suite).
"""
import os
from typing import Dict, List, Sequence

from .coco_format import coco_records
from .common import JsonCategoryMetadata, load_json, register_dataset, require_dir

SEGINW_NAMES = (
    "Elephants", "Hand-Metal", "Watermelon", "House-Parts", "HouseHold-Items", "Strawberry",
    "Fruits", "Nutterfly-Squireel", "Hand", "Garbage", "Chicken", "Rail", "Airplane-Parts",
    "Brain-Tumor", "Poles", "Electric-Shaver", "Bottles", "Toolkits", "Trash", "Salmon-Fillet",
    "Puppies", "Tablets", "Phones", "Cows", "Ginger-Garlic",
)  # fmt: skip
SEGINW_JSON = "_annotations_min1cat.coco.json"
# registered split name -> folder of a dataset
SEGINW_SPLITS = {"train": "train", "train_10shot": "train_10shot", "val": "valid"}


def load_seginw_split(json_file: str, image_root: str) -> List[dict]:
    """Unified records of one SeginW-format split: instance masks (polygons or RLE) with boxes;
    category ids are the json's, made contiguous (0-based jsons keep their ids)."""
    info = load_json(json_file)
    require_dir(image_root)
    return coco_records(info, image_root, source=json_file)


def seginw_split_paths(root: str, name: str, folder: str) -> Dict[str, str]:
    """Image folder and json of dataset ``name``'s split folder ``folder`` under suite ``root``."""
    image_root = os.path.join(root, name, folder)
    return {"image_root": image_root, "json_file": os.path.join(image_root, SEGINW_JSON)}


def register_seginw_style_suite(
    root: str,
    names: Sequence[str],
    prefix: str,
    splits: Dict[str, str] = SEGINW_SPLITS,
    task: str = "instance",
) -> List[str]:
    """Register every ``names`` x ``splits`` of a SeginW-format suite at ``root`` as
    ``<prefix>_<name>_<split>``; return the registered names. Touches no file."""
    registered = []
    for name in names:
        for split, folder in splits.items():
            dataset_name = f"{prefix}_{name}_{split}"
            paths = seginw_split_paths(root, name, folder)
            register_dataset(
                dataset_name,
                lambda p=paths: load_seginw_split(p["json_file"], p["image_root"]),
                metadata=JsonCategoryMetadata(name=dataset_name),
                task=task,
                evaluator_type="seginw",
                suite=prefix,
                suite_dataset=name,
                **paths,
            )
            registered.append(dataset_name)
    return registered


def register_seginw(root: str) -> List[str]:
    """Register SeginW's 25 datasets from ``root/seginw`` as ``seginw_<Name>_<split>``."""
    return register_seginw_style_suite(os.path.join(root, "seginw"), SEGINW_NAMES, "seginw")
