"""The benchmark's on-disk layout: the path of every file, shared by the writer and the loaders.

``<root>/mqformer_shapes/`` holds (``<split>`` is ``train`` or ``val``)::

    manifest.json                              generation parameters; written last
    images/<split>/000001.png                  RGB images of the full scenes
    semantic/<split>/000001.png                uint8 label map, contiguous class index per pixel
    panoptic/<split>/000001.png                COCO-panoptic PNG (RGB-encoded segment ids)
    annotations/instances_<split>.json         COCO instances (things, RLE masks)
    annotations/panoptic_<split>.json          COCO panoptic json (things + stuff)
    annotations/refs_<split>.json              referring expressions, a list of
                                               {ref_id, image_id, ann_id, sentences, sent_ids}
    images/detection_<split>/000001.png        images of the detection-only split
    annotations/detection_<split>.json         COCO json with boxes only (no "segmentation")
    foreground/<split>/images/000001.png       one salient object per image
    foreground/<split>/masks/000001.png        its binary mask (0 / 255)
    seginw/<Name>/{train,valid}/               SeginW's layout: the images and
                                               _annotations_min1cat.coco.json
"""
import os
from dataclasses import dataclass

BENCHMARK_DIRNAME = "mqformer_shapes"
MANIFEST_NAME = "manifest.json"
SEGINW_JSON_NAME = "_annotations_min1cat.coco.json"
SPLITS = ("train", "val")
_SEGINW_FOLDERS = {"train": "train", "val": "valid"}


def default_root() -> str:
    """``$DETECTRON2_DATASETS``, ``datasets`` when unset (as in Detectron2's builtin datasets)."""
    return os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))


def image_file_name(image_id: int) -> str:
    """File name of the image with this 1-based id, the same in every folder."""
    return f"{image_id:06d}.png"


@dataclass(frozen=True)
class Layout:
    """Paths inside one benchmark directory ``base`` (normally ``<root>/mqformer_shapes``)."""

    base: str

    @classmethod
    def under_root(cls, root: str) -> "Layout":
        return cls(os.path.join(root, BENCHMARK_DIRNAME))

    def _path(self, *parts: str) -> str:
        return os.path.join(self.base, *parts)

    @property
    def manifest(self) -> str:
        return self._path(MANIFEST_NAME)

    def images(self, split: str) -> str:
        return self._path("images", split)

    def semantic(self, split: str) -> str:
        return self._path("semantic", split)

    def panoptic(self, split: str) -> str:
        return self._path("panoptic", split)

    def instances_json(self, split: str) -> str:
        return self._path("annotations", f"instances_{split}.json")

    def panoptic_json(self, split: str) -> str:
        return self._path("annotations", f"panoptic_{split}.json")

    def refs_json(self, split: str) -> str:
        return self._path("annotations", f"refs_{split}.json")

    def detection_images(self, split: str) -> str:
        return self._path("images", f"detection_{split}")

    def detection_json(self, split: str) -> str:
        return self._path("annotations", f"detection_{split}.json")

    def foreground_images(self, split: str) -> str:
        return self._path("foreground", split, "images")

    def foreground_masks(self, split: str) -> str:
        return self._path("foreground", split, "masks")

    def seginw_dir(self, dataset: str, split: str) -> str:
        """SeginW names its validation folder ``valid``."""
        return self._path("seginw", dataset, _SEGINW_FOLDERS[split])

    def seginw_json(self, dataset: str, split: str) -> str:
        return os.path.join(self.seginw_dir(dataset, split), SEGINW_JSON_NAME)
