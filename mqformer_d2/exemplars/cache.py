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


def load_or_build_region_cache(path: str, model, cfg, objects: Sequence[ObjectRecord], classes: List[str]) -> Dict:
    """The cache at `path` when it holds these objects' read-outs, else built and saved there."""
    if os.path.exists(path):
        cache = torch.load(path, weights_only=True)
        if cache.get("version") == CACHE_VERSION and len(cache["class_ids"]) == len(objects):
            logger.info("exemplar read-outs of %d objects read from %s", len(objects), path)
            return cache
        raise ValueError(f"{path} holds read-outs of other objects; remove it or choose another output folder")
    cache = build_region_cache(model, cfg, objects, classes)
    torch.save(cache, path)
    return cache
