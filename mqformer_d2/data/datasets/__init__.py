"""Dataset registrations in the unified (text, box, mask) format (docs/data_format.md).

Importing this package registers every family below rooted at ``$DETECTRON2_DATASETS`` (default
``datasets``); nothing is read until a dataset is loaded. ``register_all(root)`` re-roots them all
(e.g. in tests). Layouts: datasets/README.md.
"""
from .ade20k import load_ade20k_panoptic, load_ade20k_semantic, register_ade20k
from .bdd import load_bdd_semantic, register_bdd
from .coco import (
    load_coco_unified_instance,
    load_coco_unified_panoptic,
    load_lvis_unified,
    register_coco_unified,
)
from .common import (
    DatasetNotFoundError,
    JsonCategoryMetadata,
    clean_class_name,
    clean_class_names,
    datasets_root,
    register_dataset,
)
from .foreground import load_foreground_pairs, register_foreground, register_foreground_pairs
from .matting import load_matting_folders, register_matting_folders
from .objects365 import load_objects365, register_objects365
from .pascal_context import load_pascal_context, register_pascal_context
from .refcoco import load_refcoco, register_refcoco
from .seginw import (
    SEGINW_NAMES,
    load_seginw_split,
    register_seginw,
    register_seginw_style_suite,
)
from .visual_genome import load_visual_genome, register_visual_genome

_FAMILIES = (
    register_coco_unified,
    register_ade20k,
    register_pascal_context,
    register_bdd,
    register_objects365,
    register_visual_genome,
    register_refcoco,
    register_seginw,
    register_foreground,
)


def register_all(root: str) -> None:
    """Register (or re-register) every dataset family rooted at ``root``."""
    for register in _FAMILIES:
        register(root)


register_all(datasets_root())
