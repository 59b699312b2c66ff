"""Alpha-matting datasets in the common folder layout (Composition-1k / Distinctions-646 /
P3M style after compositing)::

    <root>/image/<name>.<jpg|png>     the images
    <root>/alpha/<name>.png           their alpha mattes: single-channel, 8 or 16 bits
    <root>/trimap/<name>.png          optional: trimaps (0 background, 128 unknown, 255 foreground)

Files pair by stem. Each record carries ``alpha_file_name`` (and ``trimap_file_name`` when the
folder exists) besides detectron2's ``file_name``, ``image_id``, ``height`` and ``width``; the
matting evaluator (``evaluator_type`` "matting") reads them. Without trimaps the evaluator makes
them from the ground-truth alpha (``mqformer_d2.matting.trimap.trimap_from_alpha``).
Register any such folder with :func:`register_matting_folders`.
"""
import os
from typing import Dict, List

from PIL import Image

from .common import register_dataset, require_dir

IMAGE_DIR, ALPHA_DIR, TRIMAP_DIR = "image", "alpha", "trimap"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _files_by_stem(folder: str, extensions=IMAGE_EXTENSIONS) -> Dict[str, str]:
    return {os.path.splitext(name)[0]: os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if name.lower().endswith(extensions)}


def load_matting_folders(root: str) -> List[dict]:
    """Records of ``root``'s image / alpha (/ trimap) folders; an error naming the first image
    without an alpha matte (or trimap, when ``trimap/`` exists)."""
    require_dir(os.path.join(root, IMAGE_DIR))
    require_dir(os.path.join(root, ALPHA_DIR))
    images = _files_by_stem(os.path.join(root, IMAGE_DIR))
    if not images:
        raise FileNotFoundError(f"matting dataset {root}: no image in {os.path.join(root, IMAGE_DIR)}")
    alphas = _files_by_stem(os.path.join(root, ALPHA_DIR))
    trimap_dir = os.path.join(root, TRIMAP_DIR)
    trimaps = _files_by_stem(trimap_dir) if os.path.isdir(trimap_dir) else None
    records = []
    for stem, image_file in images.items():
        if stem not in alphas:
            raise FileNotFoundError(f"matting dataset {root}: image {image_file} has no alpha matte "
                                    f"{os.path.join(root, ALPHA_DIR, stem)}.png")
        width, height = Image.open(image_file).size  # reads the header only
        record = {"file_name": image_file, "image_id": stem, "height": height, "width": width,
                  "alpha_file_name": alphas[stem], "annotations": []}
        if trimaps is not None:
            if stem not in trimaps:
                raise FileNotFoundError(f"matting dataset {root}: image {image_file} has no trimap "
                                        f"in {trimap_dir}")
            record["trimap_file_name"] = trimaps[stem]
        records.append(record)
    return records


def register_matting_folders(name: str, root: str, prompt: str = "foreground") -> None:
    """Register the matting dataset ``name`` of ``root`` (see the module docstring); ``prompt`` is
    the text that names its foreground for a prompted model."""
    register_dataset(name, lambda: load_matting_folders(root), task="matting",
                     evaluator_type="matting", text_prompts=[prompt], thing_classes=[prompt],
                     image_root=os.path.join(root, IMAGE_DIR))
