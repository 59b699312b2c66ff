"""The synthetic COCO json both tools write (format in the package docstring): output checks, the
pieces made from a source dataset's unified dicts, and the atomic write."""
import json
import os
from typing import Dict, List, Sequence, Tuple

from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode


def check_output_path(path: str, overwrite: bool) -> None:
    """Refuse to replace an existing file unless `overwrite`; the folder must exist or be creatable."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"--output {path} already exists; pass --overwrite to replace it "
                              "or choose another file")
    if os.path.isdir(path):
        raise IsADirectoryError(f"--output {path} is a folder, expected a json file path")


def require_registered(dataset: str) -> None:
    """A KeyError naming --dataset when it is not a registered dataset."""
    if dataset not in DatasetCatalog.list():
        raise KeyError(f"--dataset '{dataset}' is not a registered dataset")


def write_json_atomic(path: str, data) -> None:
    """Write `data` as json to `path` through a temporary file + rename (never half-written)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def category_table(metadata, dataset_name: str) -> Tuple[List[dict], Dict[int, int]]:
    """COCO ``categories`` of a dataset's metadata and the contiguous index -> json id map.

    Contiguous index i (a unified ``category_id``, an index into ``text_prompts``) keeps the source's
    dataset id when ``thing_dataset_id_to_contiguous_id`` maps some id onto every index, else gets
    id i."""
    prompts = list(metadata.get("text_prompts", None) or [])
    names = list(metadata.get("thing_classes", None) or prompts)
    if not names:
        raise ValueError(f"dataset '{dataset_name}': its metadata has neither thing_classes nor text_prompts")
    if prompts and len(prompts) != len(names):
        names = prompts
    id_map = metadata.get("thing_dataset_id_to_contiguous_id", None) or {}
    to_dataset_id = {int(index): int(dataset_id) for dataset_id, index in id_map.items()}
    if sorted(to_dataset_id) != list(range(len(names))):
        to_dataset_id = {index: index for index in range(len(names))}
    categories = [{"id": to_dataset_id[i], "name": name} for i, name in enumerate(names)]
    return categories, to_dataset_id


def image_root_of(records: Sequence[dict], metadata) -> str:
    """The folder image paths are written relative to: the metadata's ``image_root`` when it holds
    every image, else the images' common folder."""
    root = metadata.get("image_root", None)
    files = [os.path.abspath(r["file_name"]) for r in records]
    if root and all(f.startswith(os.path.abspath(root) + os.sep) for f in files):
        return os.path.abspath(root)
    return os.path.commonpath([os.path.dirname(f) for f in files]) if files else os.getcwd()


def coco_image(record: dict, image_root: str) -> dict:
    """The COCO ``images`` entry of a unified record."""
    return {"id": record["image_id"], "file_name": os.path.relpath(os.path.abspath(record["file_name"]), image_root),
            "height": int(record["height"]), "width": int(record["width"])}


def prompt_text(annotation: dict, text_prompts: Sequence[str], where: str) -> str:
    """The text naming an annotation's object: ``text_prompts[category_id]``, else its first text;
    a ValueError "`where` has neither ..." when it has neither."""
    if annotation.get("category_id") is not None:
        return text_prompts[annotation["category_id"]]
    if annotation.get("texts"):
        return annotation["texts"][0]
    raise ValueError(f"{where} has neither category_id nor texts")


def xywh_box(annotation: dict) -> List[float]:
    """An annotation's box as XYWH absolute floats."""
    box = BoxMode.convert(list(annotation["bbox"]), annotation.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYWH_ABS)
    return [float(v) for v in box]


def json_segmentation(segmentation):
    """A polygon list or RLE dict in json-serialisable form (RLE ``counts`` bytes -> str)."""
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), bytes):
        return dict(segmentation, counts=segmentation["counts"].decode("ascii"))
    return segmentation


def coco_base_annotation(annotation: dict, image_id, to_dataset_id: Dict[int, int]) -> dict:
    """A unified annotation as a COCO annotation (no ``id`` yet): box, class, crowd flag, its mask
    if it has one, ``has_box`` when False, ``texts``, ``area`` (of the box; the tools set the
    mask's)."""
    out = {"image_id": image_id, "bbox": xywh_box(annotation), "iscrowd": int(annotation.get("iscrowd", 0))}
    if "segmentation" in annotation:
        out["segmentation"] = json_segmentation(annotation["segmentation"])
    if annotation.get("category_id") is not None:
        out["category_id"] = to_dataset_id[int(annotation["category_id"])]
    elif annotation.get("unknown_category_id") is not None:  # kept as the source json has it
        out["category_id"] = annotation["unknown_category_id"]
    if not annotation.get("has_box", True):
        out["has_box"] = False
    if annotation.get("texts"):
        out["texts"] = list(annotation["texts"])
    out["area"] = float(out["bbox"][2] * out["bbox"][3])
    return out


def number_annotations(annotations: List[dict]) -> List[dict]:
    """Give annotations the ids 1..n in order (``id`` first in each dict)."""
    return [dict({"id": index}, **ann) for index, ann in enumerate(annotations, start=1)]


def synthetic_coco_file(provenance: dict, records: Sequence[dict], image_root: str, categories: List[dict],
                        annotations: List[dict]) -> dict:
    """The whole json of a tool: ``info.mqformer_synthetic`` = `provenance`, the records' images
    (paths relative to `image_root`), `categories`, and `annotations` numbered 1..n."""
    return {
        "info": {"mqformer_synthetic": provenance},
        "images": [coco_image(record, image_root) for record in records],
        "categories": categories,
        "annotations": number_annotations(annotations),
    }
