"""Registers the example dataset "my_parts" (COCO instance json + images) the detectron2 way.

Import it into any entry point with `--register-module configs/custom/register_parts.py` (or
MQFORMER_REGISTER_MODULES=configs/custom/register_parts.py); configs/custom/mqformer_parts.yaml
trains on it. The files are looked up under $DETECTRON2_DATASETS (default datasets/):

    my_parts/train.json   my_parts/val.json   my_parts/images/

detectron2's `register_coco_instances` is all it takes: MQ-Former reads the class names of the
json as its text prompts and takes the task (instance segmentation, or detection when the json
has no masks) from the annotations. Replace the names and paths with your own.
"""
import os

from detectron2.data.datasets import register_coco_instances

ROOT = os.path.join(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")), "my_parts")

for split in ("train", "val"):
    register_coco_instances(f"my_parts_{split}", {}, os.path.join(ROOT, f"{split}.json"),
                            os.path.join(ROOT, "images"))
