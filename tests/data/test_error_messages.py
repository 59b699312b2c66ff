"""Errors on bad files and annotations name the file, dataset or annotation at fault."""
import uuid

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from PIL import Image

from mqformer_d2 import add_mqformer_config
from mqformer_d2.data.annotation_checks import check_annotations
from mqformer_d2.data.datasets.coco_format import coco_records
from mqformer_d2.data.datasets.common import load_json
from mqformer_d2.data.unified_mapper import UnifiedDatasetMapper


def test_a_truncated_json_names_the_file(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text('{"images": [{"id": 1, "file_na')
    with pytest.raises(ValueError, match=f"{path}.*not valid json"):
        load_json(str(path))


def test_a_category_id_not_in_the_category_list_names_dataset_file_and_annotation():
    # Kept by the loader as None with the json's id; the data checks refuse it with the switch on
    # (and drop it with a warning line otherwise: tests/data/test_data_annotation_checks.py).
    info = {"categories": [{"id": 1, "name": "cup"}], "images": [{"id": 7, "file_name": "a.jpg", "height": 4,
            "width": 4}], "annotations": [{"id": 99, "image_id": 7, "category_id": 42, "bbox": [0, 0, 2, 2]}]}
    records = coco_records(info, "images")
    assert records[0]["annotations"][0]["category_id"] is None
    name = f"test_errors_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(task="instance", text_prompts=["cup"])
    with pytest.raises(ValueError, match=f"dataset '{name}': 1 annotation\\(s\\) with unknown category .*"
                                         "images/a.jpg annotation id 99 \\(category id 42\\)"):
        check_annotations(name, records, policy="error")
    MetadataCatalog.remove(name)


@pytest.mark.parametrize("rle", [{"size": [4, 6], "counts": "!!garbage"}, {"size": [4, 6], "counts": [5, 3]},
                                 {"size": [8, 8], "counts": [64]}])
def test_an_invalid_rle_names_dataset_image_and_annotation(tmp_path, rle):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(image)
    name = f"test_errors_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(task="instance", text_prompts=["cup"])
    cfg = add_mqformer_config(get_cfg())
    cfg.INPUT.IMAGE_SIZE = 8
    record = {"file_name": str(image), "height": 4, "width": 6, "image_id": 0, "dataset_name": name,
              "annotations": [{"id": 5, "category_id": 0, "segmentation": rle}]}
    with pytest.raises(ValueError, match=f"dataset '{name}', image .*image.png, annotation 0 \\(id 5\\): (?i:invalid RLE)"):
        UnifiedDatasetMapper(cfg, True)(record)
    MetadataCatalog.remove(name)
