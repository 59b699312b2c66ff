"""Open-vocabulary adapters around COCOEvaluator / SemSegEvaluator / COCOPanopticEvaluator on a
tiny panoptic dataset whose vocabulary mixes things and stuff (things not first), checked
against pycocotools and hand computations; and build_evaluator's dispatch on metadata."""
import os

import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluators
from panopticapi.utils import id2rgb

from mqformer_d2.data.datasets import register_dataset
from mqformer_d2.evaluation import (
    OpenVocabCOCOEvaluator,
    OpenVocabPanopticEvaluator,
    OpenVocabSemSegEvaluator,
    build_evaluator,
)
from mqformer_d2.evaluation.adapters import covers_every_class
from evaluation_cases import (
    coco_results,
    instances,
    pycocotools_stats,
    random_predictions,
    rect_mask,
    registered,
    rle,
    unique_name,
    write_json,
    write_png,
)

S = 16
PROMPTS = ["sky", "circle", "grass", "square"]  # contiguous ids 0..3
THING_IDS = {1: 1, 2: 3}  # json id -> contiguous id
STUFF_IDS = {10: 0, 11: 2}
JSON_ID = {1: 1, 3: 2, 0: 10, 2: 11}  # contiguous id -> json id
# per image: segments (panoptic id, contiguous id, mask)
SEGMENTS = {
    1: [(1, 0, rect_mask(0, 0, 16, 5, S, S)), (2, 2, rect_mask(0, 12, 16, 16, S, S)),
        (3, 1, rect_mask(1, 6, 5, 10, S, S)), (4, 1, rect_mask(6, 6, 9, 10, S, S)),
        (5, 3, rect_mask(11, 6, 15, 11, S, S))],
    2: [(1, 0, rect_mask(0, 0, 16, 16, S, S))],
}


def write_fixture(root):
    """Instances json, panoptic json + PNGs, semantic label PNGs; returns the records."""
    images, instance_anns, panoptic_anns, records = [], [], [], []
    for image_id, segments in SEGMENTS.items():
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "height": S, "width": S})
        ids, labels = np.zeros((S, S), np.uint32), np.full((S, S), 255, np.uint8)
        infos = []
        for segment_id, contiguous, mask in segments:
            ids[mask], labels[mask] = segment_id, contiguous
            ys, xs = np.nonzero(mask)
            bbox = [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]
            infos.append({"id": segment_id, "category_id": JSON_ID[contiguous], "iscrowd": 0,
                          "area": int(mask.sum()), "bbox": bbox})
            if contiguous in THING_IDS.values():
                instance_anns.append({"id": len(instance_anns) + 1, "image_id": image_id, "iscrowd": 0,
                                      "category_id": JSON_ID[contiguous], "segmentation": rle(mask),
                                      "area": int(mask.sum()), "bbox": bbox})
        write_png(os.path.join(root, "panoptic", f"{image_id}.png"), id2rgb(ids))
        sem = write_png(os.path.join(root, "semantic", f"{image_id}.png"), labels)
        panoptic_anns.append({"image_id": image_id, "file_name": f"{image_id}.png", "segments_info": infos})
        records.append({"file_name": f"/images/{image_id}.jpg", "image_id": image_id,
                        "height": S, "width": S, "sem_seg_file_name": sem, "annotations": []})
    categories = [{"id": JSON_ID[c], "name": PROMPTS[c], "isthing": int(c in THING_IDS.values())}
                  for c in range(len(PROMPTS))]
    write_json(os.path.join(root, "instances.json"), {
        "images": images, "annotations": instance_anns,
        "categories": [c for c in categories if c["isthing"]]})
    write_json(os.path.join(root, "panoptic.json"), {
        "images": images, "annotations": panoptic_anns, "categories": categories})
    return records


@pytest.fixture(params=["coco_style", "full_stuff_map"])
def dataset(tmp_path, request):
    """The registered dataset; its stuff id map covers stuff only (detectron2's COCO panoptic
    metadata) or every class (ADE20K / the shapes benchmark)."""
    root = str(tmp_path)
    records = write_fixture(root)
    name = unique_name("evaltest_panoptic")
    stuff_ids = dict(STUFF_IDS) if request.param == "coco_style" else {**STUFF_IDS, **THING_IDS}
    with registered([name]):
        register_dataset(
            name, lambda: records, task="panoptic", evaluator_type="coco_panoptic_seg",
            text_prompts=list(PROMPTS), stuff_classes=list(PROMPTS), thing_classes=["circle", "square"],
            thing_dataset_id_to_contiguous_id=dict(THING_IDS),
            stuff_dataset_id_to_contiguous_id=stuff_ids, ignore_label=255,
            json_file=os.path.join(root, "instances.json"), panoptic_json=os.path.join(root, "panoptic.json"),
            panoptic_root=os.path.join(root, "panoptic"), sem_seg_root=os.path.join(root, "semantic"),
        )
        yield name


def make_input(image_id, vocabulary=PROMPTS):
    return {"image_id": image_id, "file_name": f"/images/{image_id}.jpg", "height": S, "width": S,
            "vocabulary": list(vocabulary)}


def test_instance_ap_drops_stuff_and_maps_things(dataset):
    evaluator = OpenVocabCOCOEvaluator(dataset)
    evaluator.reset()
    rng = np.random.default_rng(0)
    reference = []
    for image_id, segments in SEGMENTS.items():
        gt = [(mask, contiguous) for _, contiguous, mask in segments]  # stuff included on purpose
        predicted = random_predictions(gt, len(PROMPTS), (S, S), rng)
        reference += coco_results(image_id, predicted, [JSON_ID.get(c) if c in (1, 3) else None for c in range(4)])
        evaluator.process([make_input(image_id)], [{"instances": predicted}])
    results = evaluator.evaluate()
    json_file = MetadataCatalog.get(dataset).json_file
    assert results["segm"]["AP"] == pycocotools_stats(json_file, reference, "segm")[0]
    assert results["bbox"]["AP"] == pycocotools_stats(json_file, reference, "bbox")[0]
    assert {"AP-circle", "AP-square"} <= set(results["segm"])


def perfect_panoptic(image_id, vocabulary, drop=()):
    """The ground truth as a model output over ``vocabulary``, with an extra "dog" segment on
    void pixels and the segments of contiguous ids ``drop`` left out; isthing is deliberately
    wrong (the adapter must not trust it)."""
    ids = torch.zeros(S, S, dtype=torch.int32)
    infos = []
    for segment_id, contiguous, mask in SEGMENTS[image_id]:
        if contiguous in drop:
            continue
        ids[torch.from_numpy(mask)] = segment_id
        infos.append({"id": segment_id, "category_id": vocabulary.index(PROMPTS[contiguous]), "isthing": True})
    if "dog" in vocabulary and image_id == 1:
        ids[5:6, :] = 99
        infos.append({"id": 99, "category_id": vocabulary.index("dog"), "isthing": True})
    return {"panoptic_seg": (ids, infos)}


@pytest.mark.parametrize("vocabulary", [PROMPTS, ["dog", "square", "grass", "sky", "circle"]])
def test_panoptic_quality(dataset, vocabulary):
    evaluator = OpenVocabPanopticEvaluator(dataset)
    evaluator.reset()
    for image_id in SEGMENTS:
        evaluator.process([make_input(image_id, vocabulary)], [perfect_panoptic(image_id, vocabulary)])
    results = evaluator.evaluate()["panoptic_seg"]
    assert results["PQ"] == pytest.approx(100.0)
    # grass missed: its only segment is a false negative -> PQ(grass) = 0; others stay 100
    evaluator.reset()
    for image_id in SEGMENTS:
        evaluator.process([make_input(image_id, vocabulary)], [perfect_panoptic(image_id, vocabulary, drop=(2,))])
    results = evaluator.evaluate()["panoptic_seg"]
    assert results["PQ"] == pytest.approx(75.0)
    assert results["PQ_th"] == pytest.approx(100.0) and results["PQ_st"] == pytest.approx(50.0)


def labels(image_id):
    label = np.full((S, S), 255, np.int64)
    for _, contiguous, mask in SEGMENTS[image_id]:
        label[mask] = contiguous
    return label


def scores_over(vocabulary, label):
    """(T, S, S) one-hot scores of a label map over ``vocabulary`` (void pixels: "sky")."""
    label = np.where(label == 255, 0, label)
    scores = torch.zeros(len(vocabulary), S, S)
    for contiguous, text in enumerate(PROMPTS):
        if text in vocabulary:
            scores[vocabulary.index(text)][torch.from_numpy(label == contiguous)] = 1.0
    return scores


def test_semantic_miou_by_hand(dataset):
    if not covers_every_class(dataset):
        with pytest.raises(ValueError, match="stuff_dataset_id_to_contiguous_id"):
            OpenVocabSemSegEvaluator(dataset)
        return
    vocabulary = ["grass", "dog", "circle", "square", "sky"]
    evaluator = OpenVocabSemSegEvaluator(dataset)
    evaluator.reset()
    for image_id in SEGMENTS:
        predicted = labels(image_id)
        predicted[predicted == 2] = 0  # grass predicted as sky
        evaluator.process([make_input(image_id, vocabulary)], [{"sem_seg": scores_over(vocabulary, predicted)}])
    results = evaluator.evaluate()["sem_seg"]
    sky = sum((labels(i) == 0).sum() for i in SEGMENTS)
    grass = sum((labels(i) == 2).sum() for i in SEGMENTS)
    sky_iou = sky / (sky + grass)
    assert results["mIoU"] == pytest.approx(100 * (sky_iou + 0 + 1 + 1) / 4)
    assert results["IoU-circle"] == pytest.approx(100.0)


def test_build_evaluator_for_panoptic_metadata(dataset):
    evaluator = build_evaluator(None, dataset)
    assert isinstance(evaluator, DatasetEvaluators)
    kinds = [type(e) for e in evaluator._evaluators]
    semantic = covers_every_class(dataset)
    assert kinds == [OpenVocabPanopticEvaluator, OpenVocabCOCOEvaluator] + [OpenVocabSemSegEvaluator] * semantic
    # a model that outputs panoptic segmentation only: the other two stay silent
    evaluator.reset()
    for image_id in SEGMENTS:
        evaluator.process([make_input(image_id)], [perfect_panoptic(image_id, PROMPTS)])
    assert set(evaluator.evaluate()) == {"panoptic_seg"}
    # all outputs at once
    evaluator.reset()
    for image_id in SEGMENTS:
        output = perfect_panoptic(image_id, PROMPTS)
        output["sem_seg"] = scores_over(PROMPTS, labels(image_id))
        output["instances"] = instances(np.zeros((0, S, S), bool), [], [], (S, S))
        evaluator.process([make_input(image_id)], [output])
    results = evaluator.evaluate()
    assert {"panoptic_seg", "segm", "bbox"} | ({"sem_seg"} if semantic else set()) == set(results)
    assert not semantic or results["sem_seg"]["mIoU"] == pytest.approx(100.0)


def test_build_evaluator_uses_metadata_not_name(tmp_path):
    # a name that looks like COCO but the metadata says foreground
    name = unique_name("coco_2017_val_panoptic_lookalike")
    missing = unique_name("evaltest_unknown")
    detection = unique_name("evaltest_detection")
    with registered([name, missing, detection]):
        register_dataset(name, lambda: [], task="foreground", evaluator_type="foreground",
                         text_prompts=["foreground"])
        assert type(build_evaluator(None, name)).__name__ == "ForegroundEvaluator"
        register_dataset(missing, lambda: [], task="detection", evaluator_type=None, text_prompts=["a"])
        with pytest.raises(ValueError, match=missing):
            build_evaluator(None, missing)
        register_dataset(detection, lambda: [], task="detection", evaluator_type="coco", text_prompts=["a"],
                         json_file=str(tmp_path / "x.json"))
        assert build_evaluator(None, detection).tasks == ("bbox",)


def test_lvis_without_the_package_is_a_clear_error():
    pytest.importorskip("detectron2")
    try:
        import lvis  # noqa: F401
        pytest.skip("lvis is installed")
    except ImportError:
        pass
    name = unique_name("evaltest_lvis")
    with registered([name]):
        register_dataset(name, lambda: [], task="instance", evaluator_type="lvis", text_prompts=["a"])
        with pytest.raises(ImportError, match=name):
            build_evaluator(None, name)


@pytest.mark.parametrize("dataset", ["full_stuff_map"], indirect=True)  # semantic evaluation needs it
@pytest.mark.parametrize("value, dtype", [(5, np.uint8), (300, np.uint16)])
def test_a_ground_truth_label_outside_the_classes_names_the_file_and_value(dataset, value, dtype):
    sem_seg_file = os.path.join(MetadataCatalog.get(dataset).sem_seg_root, "2.png")
    label = labels(2).astype(dtype)
    label[3:5, 3:5] = value  # 4 pixels of a label the 4-class dataset does not have
    write_png(sem_seg_file, label)
    evaluator = OpenVocabSemSegEvaluator(dataset)
    evaluator.reset()
    evaluator.process([make_input(1)], [{"sem_seg": scores_over(PROMPTS, labels(1))}])
    with pytest.raises(ValueError, match=f"dataset '{dataset}': ground-truth file {sem_seg_file} holds "
                                         f"label\\(s\\) \\[{value}\\] \\(4 pixels\\), outside its 4 classes"):
        evaluator.process([make_input(2)], [{"sem_seg": scores_over(PROMPTS, labels(2))}])
