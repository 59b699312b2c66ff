"""A typo in DATASETS.TRAIN / DATASETS.TEST fails at start-up, naming the key and close names."""
import pytest
from detectron2.config import get_cfg

from mqformer_d2.engine.dataset_checks import check_dataset_names


@pytest.mark.parametrize("key", ["TRAIN", "TEST"])
def test_a_typo_names_the_key_and_close_registered_names(key):
    cfg = get_cfg()
    cfg.DATASETS[key] = ("coco_2017_train",) if key == "TRAIN" else ("coco_2017_vall",)
    cfg.DATASETS["TEST" if key == "TRAIN" else "TRAIN"] = ()
    if key == "TRAIN":
        check_dataset_names(cfg)  # registered: no error
        cfg.DATASETS.TRAIN = ("coco_2017_trian",)
    with pytest.raises(KeyError, match=f"DATASETS.{key}: dataset 'coco_2017_.*' is not registered.*coco_2017_"):
        check_dataset_names(cfg)
