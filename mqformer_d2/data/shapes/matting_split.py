"""The benchmark's matting split ``mqformer_shapes_matting``: one soft-edged object per image
(`soft_objects`) over the benchmark's textured stuff, among 1..3 hard-edged distractor objects of
other colours and shapes, so that a prompt has to pick it out. Generated deterministically from
the seed (each image from its own generator, as the rest of the benchmark) on first load, cached
under ``<root>/mqformer_shapes_matting/`` in the common matting layout plus a COCO-style json::

    manifest.json                            generation parameters; written last
    <split>/image/000001.png                 RGB composite
    <split>/alpha/000001.png                 8-bit alpha matte of the object (exact)
    <split>/trimap/000001.png                0 / 128 / 255; unknown = 0 < alpha < 1, dilated
    annotations/matting_<split>.json         COCO images + one annotation per image: the object's
                                             instance mask (alpha >= 0.5, RLE), category, colour,
                                             prompts ("texts") and soft effects

Registered names: ``mqformer_shapes_matting_{train,val}`` (``evaluator_type`` "matting").
"""
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from tqdm import tqdm

from ..datasets.common import load_json, register_dataset
from ..datasets.matting import load_matting_folders
from ..datasets.coco_format import coco_annotation
from .layout import SPLITS, default_root, image_file_name
from .scene import SceneSpec, ShapeObject, random_object, random_stuff, resolve_occlusion
from .soft_objects import composite, soft_alpha
from .drawing import paint_flat_color
from .vocabulary import THING_CLASSES, THING_COLORS, seen_combos
from .writer import coco_annotation as write_annotation, image_record, thing_categories, write_json, write_png

logger = logging.getLogger(__name__)

MATTING_DIRNAME = "mqformer_shapes_matting"
MATTING_GENERATOR_VERSION = 1
MIN_FOREGROUND_PIXELS = 16


@dataclass(frozen=True)
class MattingSplitConfig:
    """Everything the matting split's files depend on (besides the code version)."""

    seed: int = 0
    image_size: int = 128
    train_images: int = 1000
    val_images: int = 100
    trimap_dilation: int = 3  # pixels the ground-truth trimap's unknown region is widened by

    def manifest(self) -> dict:
        return {"benchmark": MATTING_DIRNAME, "generator_version": MATTING_GENERATOR_VERSION,
                "config": dataclasses.asdict(self)}


@dataclass
class MattingScene:
    """A composite image (uint8 RGB), the object's 8-bit alpha, the object and its effects."""

    image: np.ndarray
    alpha8: np.ndarray
    target: ShapeObject
    effects: List[str]


def prompts_of(color: str, shape: str) -> List[str]:
    """The texts naming an object, unique in its image: a referring sentence, the colour + class
    name, the colour alone."""
    return [f"the {color} {shape}", f"{color} {shape}", f"{color} object"]


def _soft_object_alpha(rng: np.random.Generator, shape: str, image_size: int, trimap_dilation: int):
    """(8-bit alpha, effects) of the soft object, redrawn (at most 20 times) until its ground-truth
    trimap keeps at least MIN_FOREGROUND_PIXELS of foreground: trimap-based matting needs known
    foreground, which a wholly blurred or semi-transparent small object would not leave."""
    from ...matting.trimap import FOREGROUND, trimap_from_alpha

    for _attempt in range(20):
        diameter = float(np.exp(rng.uniform(np.log(image_size / 4), np.log(image_size / 2))))
        center = rng.uniform(diameter / 2 + 2, image_size - diameter / 2 - 2, size=2)
        alpha, effects = soft_alpha(rng, shape, center, diameter, float(rng.uniform(0, 2 * np.pi)),
                                    image_size)
        alpha8 = np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8)
        trimap = trimap_from_alpha(alpha8.astype(np.float32) / 255.0, trimap_dilation)
        if np.count_nonzero(trimap == FOREGROUND) >= MIN_FOREGROUND_PIXELS:
            break
    return alpha8, effects


def random_matting_scene(rng: np.random.Generator, image_size: int,
                         trimap_dilation: int = 3) -> MattingScene:
    """Stuff, 1..3 distractors (never the object's colour or shape), then the soft object on top."""
    spec = SceneSpec(image_size=image_size, combos=tuple(seen_combos()))
    background, _ = random_stuff(rng, spec)
    color, shape = spec.combos[int(rng.integers(len(spec.combos)))]
    others = tuple(c for c in spec.combos if c[0] != color and c[1] != shape)
    distractor_spec = dataclasses.replace(spec, combos=others)
    distractors = [random_object(rng, distractor_spec) for _ in range(int(rng.integers(1, 4)))]
    alpha8, effects = _soft_object_alpha(rng, shape, image_size, trimap_dilation)
    target = ShapeObject(shape, color, full_mask=alpha8 >= 128)
    visible = resolve_occlusion(distractors + [target], spec)
    for obj in visible[:-1]:
        paint_flat_color(background, obj.full_mask, THING_COLORS[obj.color], rng)
    foreground = np.zeros_like(background)
    paint_flat_color(foreground, np.ones(alpha8.shape, bool), THING_COLORS[color], rng)
    return MattingScene(composite(foreground, background, alpha8), alpha8, target, effects)


def _split_dir(base: str, split: str, kind: str) -> str:
    return os.path.join(base, split, kind)


def matting_json(base: str, split: str) -> str:
    return os.path.join(base, "annotations", f"matting_{split}.json")


def _write_image(base: str, split: str, image_id: int, scene: MattingScene, dilation: int) -> dict:
    from ...matting.trimap import trimap_from_alpha

    name = image_file_name(image_id)
    write_png(os.path.join(_split_dir(base, split, "image"), name), scene.image)
    write_png(os.path.join(_split_dir(base, split, "alpha"), name), scene.alpha8)
    trimap = trimap_from_alpha(scene.alpha8.astype(np.float32) / 255.0, dilation)
    write_png(os.path.join(_split_dir(base, split, "trimap"), name), trimap)
    target = scene.target
    annotation = write_annotation(image_id, target.category + 1, target.full_mask)
    annotation.update(id=image_id, attributes={"color": target.color}, effects=scene.effects,
                      texts=prompts_of(target.color, target.shape))
    return annotation


def write_matting_split(base: str, config: MattingSplitConfig) -> None:
    """Write both parts of the split into the new folder ``base``, manifest last."""
    counts = {"train": config.train_images, "val": config.val_images}
    for split in SPLITS:
        images, annotations = [], []
        for index in tqdm(range(counts[split]), desc=f"{MATTING_DIRNAME} {split}", unit="img"):
            rng = np.random.default_rng([config.seed, zlib.crc32(f"matting_{split}".encode()), index])
            scene = random_matting_scene(rng, config.image_size, config.trimap_dilation)
            annotations.append(_write_image(base, split, index + 1, scene, config.trimap_dilation))
            images.append(image_record(index + 1, config.image_size))
        write_json(matting_json(base, split), {"images": images, "annotations": annotations,
                                               "categories": thing_categories()})
    with open(os.path.join(base, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(config.manifest(), f, indent=2, sort_keys=True)


def _read_manifest(base: str) -> Optional[dict]:
    path = os.path.join(base, "manifest.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _move_aside(base: str) -> None:
    """Rename an outdated copy (never delete: it may hold the user's own files)."""
    suffix = 1
    while os.path.exists(f"{base}.previous-{suffix}"):
        suffix += 1
    os.rename(base, f"{base}.previous-{suffix}")
    logger.warning("%s: generation parameters changed; the old copy was moved to %s.previous-%d",
                   MATTING_DIRNAME, base, suffix)


def ensure_matting_split(root: Optional[str] = None,
                         config: Optional[MattingSplitConfig] = None) -> str:
    """``<root>/mqformer_shapes_matting``, generated first unless a copy with the same parameters
    is there (written into a temporary folder and renamed into place when complete)."""
    root = os.path.abspath(root or default_root())
    config = config or MattingSplitConfig()
    base = os.path.join(root, MATTING_DIRNAME)
    if _read_manifest(base) == config.manifest():
        return base
    os.makedirs(root, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=f".{MATTING_DIRNAME}.partial-", dir=root)
    os.chmod(temp, 0o755)
    logger.info("%s: generating %s (seed %d) ...", MATTING_DIRNAME, base, config.seed)
    try:
        write_matting_split(temp, config)
        if os.path.exists(base):
            if _read_manifest(base) is None:
                raise FileExistsError(f"{base} exists but has no manifest.json, so it was not "
                                      "generated by this code; move it away")
            _move_aside(base)
        os.rename(temp, base)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return base


_THING_ID_MAP = {i + 1: i for i in range(len(THING_CLASSES))}


def load_matting_split(root: str, config: MattingSplitConfig, split: str) -> List[dict]:
    """Records of one part: the matting folders' files plus the object's annotation (instance
    mask, category, ``texts``, ``color``, ``effects``)."""
    base = ensure_matting_split(root, config)
    records = load_matting_folders(os.path.join(base, split))
    annotations = {ann["image_id"]: ann for ann in load_json(matting_json(base, split))["annotations"]}
    for record in records:
        raw = annotations[int(record["image_id"])]
        record["image_id"] = int(record["image_id"])
        record["annotations"] = [dict(coco_annotation(raw, _THING_ID_MAP), texts=list(raw["texts"]),
                                      color=raw["attributes"]["color"], effects=list(raw["effects"]))]
    return records


def register_matting_split(root: Optional[str] = None,
                           config: Optional[MattingSplitConfig] = None) -> List[str]:
    """Register ``mqformer_shapes_matting_{train,val}`` (nothing is generated until loaded)."""
    root = os.path.abspath(root or default_root())
    config = config or MattingSplitConfig()
    names = []
    for split in SPLITS:
        name = f"{MATTING_DIRNAME}_{split}"
        register_dataset(name, lambda split=split: load_matting_split(root, config, split),
                         task="matting", evaluator_type="matting", text_prompts=list(THING_CLASSES),
                         thing_classes=list(THING_CLASSES),
                         image_root=os.path.join(root, MATTING_DIRNAME, split, "image"))
        names.append(name)
    return names
