"""The exemplar stage's read-out cache: the backbone and pixel decoder are frozen, so the read-out
(M, C) of every training object is computed once and kept in a file (loaded without running code)."""
import logging
import os
from typing import Dict, List, Sequence

import torch

from .images import ExemplarImages
from .prompting import exemplar_regions
from .sampling import ObjectRecord

logger = logging.getLogger(__name__)
CACHE_VERSION = 1


def build_region_cache(model, cfg, objects: Sequence[ObjectRecord], classes: List[str],
                       images_per_chunk: int = 32) -> Dict:
    """{"regions" (N, M, C) float32, "class_ids" (N,), "image_ids" (N,), "classes"}: the read-outs
    of every object of `objects` (boxes), computed without gradients."""
    reader = ExemplarImages(cfg)
    class_index = {name: i for i, name in enumerate(classes)}
    regions = []
    with torch.no_grad():
        for start in range(0, len(objects), images_per_chunk * 8):
            chunk = objects[start:start + images_per_chunk * 8]
            exemplars = [reader.exemplar(o.file_name, o.box, f"{o.file_name} annotation {o.annotation_id}")
                         for o in chunk]
            regions.append(exemplar_regions(model, exemplars, images_per_chunk).float().cpu())
            reader.forget_files()  # bounded memory: the chunk's images are done
            logger.info("exemplar read-outs: %d / %d objects", start + len(chunk), len(objects))
    return {"version": CACHE_VERSION, "regions": torch.cat(regions), "classes": list(classes),
            "class_ids": torch.tensor([class_index[o.class_name] for o in objects]),
            "image_ids": torch.tensor([o.image_id for o in objects])}


def weights_stamp(weights_path: str) -> str:
    """What identifies the frozen model's weights file: absolute path, size and modification time."""
    stat = os.stat(weights_path)
    return f"{os.path.abspath(weights_path)}:{stat.st_size}:{int(stat.st_mtime)}"


def read_region_cache(path: str, weights_path: str, objects: Sequence[ObjectRecord], classes: List[str]) -> Dict:
    """A cache file written by `load_or_build_region_cache` for these weights and objects (loaded
    without running code); a ValueError naming the file when it was made for others."""
    cache = torch.load(path, weights_only=True)
    expected = {"version": CACHE_VERSION, "weights": weights_stamp(weights_path), "classes": list(classes)}
    for key, value in expected.items():
        if cache.get(key) != value:
            raise ValueError(f"read-out cache {path}: made for {key} {cache.get(key)!r}, not {value!r}")
    if len(cache["class_ids"]) != len(objects):
        raise ValueError(f"read-out cache {path} holds {len(cache['class_ids'])} objects, not {len(objects)}")
    logger.info("exemplar read-outs of %d objects read from %s", len(objects), path)
    return cache


def load_or_build_region_cache(path: str, model, cfg, objects: Sequence[ObjectRecord], classes: List[str]) -> Dict:
    """The cache at `path` when it exists (checked: same weights file cfg.MODEL.WEIGHTS, classes
    and objects), else built and saved there."""
    if os.path.exists(path):
        return read_region_cache(path, cfg.MODEL.WEIGHTS, objects, classes)
    cache = build_region_cache(model, cfg, objects, classes)
    cache["weights"] = weights_stamp(cfg.MODEL.WEIGHTS)
    torch.save(cache, path)
    return cache
