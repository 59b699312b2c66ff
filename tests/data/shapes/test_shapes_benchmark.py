"""Tests of the built-in synthetic benchmark ``mqformer_shapes`` on a tiny generated copy (CPU)."""
import fcntl
import hashlib
import json
import multiprocessing
import os
import re
import signal
import tempfile
import time

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from panopticapi.utils import rgb2id
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from mqformer_d2.data.shapes import benchmark as benchmark_module
from mqformer_d2.data.shapes import (
    ALL_CLASSES,
    COLOR_NAMES,
    STUFF_CLASSES,
    SUITE,
    THING_CLASSES,
    ShapesBenchmarkConfig,
    ensure_benchmark,
    generate_shapes_benchmark,
    register_shapes_benchmark,
)
from mqformer_d2.data.shapes.layout import Layout
from mqformer_d2.data.shapes.referring import referring_sentences
from mqformer_d2.data.shapes.scene import SceneSpec, random_scene
from mqformer_d2.data.shapes.vocabulary import HELD_OUT_COMBOS, seen_combos

SEED = 3
TINY = dict(train_images=10, val_images=6, detection_train_images=3, detection_val_images=3,
            foreground_train_images=3, foreground_val_images=3, seginw_train_images=4,
            seginw_val_images=4)
MINIMAL = {key: 1 for key in TINY}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("shapes_root"))
    generate_shapes_benchmark(root, seed=SEED, workers=1, **TINY)
    return root


@pytest.fixture(scope="module")
def layout(tiny_root):
    return Layout.under_root(tiny_root)


def file_hashes(base):
    hashes = {}
    for folder, _, files in os.walk(base):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                hashes[os.path.relpath(path, base)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def test_same_seed_is_byte_identical_other_seed_differs(tiny_root, tmp_path):
    reference = file_hashes(Layout.under_root(tiny_root).base)
    again = generate_shapes_benchmark(str(tmp_path / "a"), seed=SEED, workers=2, **TINY)
    other = generate_shapes_benchmark(str(tmp_path / "b"), seed=SEED + 1, workers=1, **TINY)
    assert file_hashes(again) == reference  # also: the output does not depend on `workers`
    other_hashes = file_hashes(other)
    assert other_hashes.keys() == reference.keys()
    images = [path for path in reference if path.endswith(".png")]
    assert all(other_hashes[path] != reference[path] for path in images)


def decode(rle):
    return mask_util.decode(rle).astype(bool)


def tight_box(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


@pytest.mark.parametrize("split", ["train", "val"])
def test_instance_masks_boxes_and_semantic_labels_agree(layout, split):
    coco = COCO(layout.instances_json(split))
    assert sorted(coco.getCatIds()) == list(range(1, len(THING_CLASSES) + 1))
    for image_id, image in coco.imgs.items():
        labels = cv2.imread(os.path.join(layout.semantic(split), image["file_name"]), 0)
        assert labels.max() < len(ALL_CLASSES)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            mask = decode(ann["segmentation"])
            assert ann["area"] == mask.sum() > 0
            assert ann["bbox"] == tight_box(mask)
            assert (labels[mask] == ann["category_id"] - 1).all()
            assert ann["attributes"]["color"] in COLOR_NAMES


@pytest.mark.parametrize("split", ["train", "val"])
def test_panoptic_png_and_json_round_trip(layout, split):
    with open(layout.panoptic_json(split)) as f:
        panoptic = json.load(f)
    is_thing = {c["id"]: c["isthing"] for c in panoptic["categories"]}
    for ann in panoptic["annotations"]:
        rgb = cv2.imread(os.path.join(layout.panoptic(split), ann["file_name"]))[:, :, ::-1]
        ids = rgb2id(rgb)
        labels = cv2.imread(os.path.join(layout.semantic(split), ann["file_name"]), 0)
        assert set(np.unique(ids)) == {s["id"] for s in ann["segments_info"]}  # no void pixel
        for segment in ann["segments_info"]:
            mask = ids == segment["id"]
            assert segment["area"] == mask.sum()
            assert segment["bbox"] == tight_box(mask)
            assert (labels[mask] == segment["category_id"] - 1).all()
        things = sum(is_thing[s["category_id"]] for s in ann["segments_info"])
        assert things == sum(s["category_id"] <= len(THING_CLASSES) for s in ann["segments_info"])


def test_detection_split_has_boxes_only(layout):
    coco = COCO(layout.detection_json("train"))
    assert coco.anns and all("segmentation" not in ann for ann in coco.anns.values())
    for ann in coco.anns.values():
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x + w <= 128 and y + h <= 128


def test_foreground_pairs_one_object(layout):
    names = sorted(os.listdir(layout.foreground_images("val")))
    assert names == sorted(os.listdir(layout.foreground_masks("val"))) and names
    for name in names:
        mask = cv2.imread(os.path.join(layout.foreground_masks("val"), name), 0)
        assert set(np.unique(mask)) == {0, 255}
        count, _ = cv2.connectedComponents((mask > 0).astype(np.uint8))
        assert count - 1 == 1  # one salient object, never occluded


def test_classes_colours_and_stuff_all_appear_and_held_out_combos_do_not():
    spec = SceneSpec(combos=tuple(seen_combos()))
    shapes, colors, stuff, combos, areas = set(), set(), set(), set(), []
    for index in range(120):
        scene = random_scene(np.random.default_rng([SEED, index]), spec)
        stuff |= {STUFF_CLASSES[i] for i in np.unique(scene.stuff_map)}
        for obj in scene.objects:
            shapes.add(obj.shape)
            colors.add(obj.color)
            combos.add((obj.color, obj.shape))
            areas.append(np.count_nonzero(obj.full_mask))
    assert shapes == set(THING_CLASSES) and colors == set(COLOR_NAMES)
    assert stuff == set(STUFF_CLASSES)
    assert not combos & set(HELD_OUT_COMBOS)
    assert min(areas) < 60 and max(areas) > 700  # ~8 px to ~a third of the 128 px image


# --- referring: an independent resolver of the sentence templates -------------------------------

def resolve(sentence, objects):
    """Indices of the objects (dicts: shape, color, area, x, y) that ``sentence`` can denote."""
    def with_shape(shape, exclude=None):
        return [i for i, o in enumerate(objects) if o["shape"] == shape and i != exclude]

    if m := re.fullmatch(r"the (\w+) (left of|right of|above|below) the (\w+) (\w+)", sentence):
        shape, relation, anchor_color, anchor_shape = m.groups()
        anchors = [i for i, o in enumerate(objects)
                   if o["color"] == anchor_color and o["shape"] == anchor_shape]
        if len(anchors) != 1:
            return anchors * 2  # ambiguous anchor
        a = objects[anchors[0]]
        axis, sign = {"left of": ("x", -1), "right of": ("x", 1),
                      "above": ("y", -1), "below": ("y", 1)}[relation]
        return [i for i in with_shape(shape, anchors[0])
                if sign * (objects[i][axis] - a[axis]) > 0]
    if m := re.fullmatch(r"the (\w+) (on the far left|on the far right|at the top|at the bottom)",
                         sentence):
        shape, where = m.groups()
        axis, pick = {"on the far left": ("x", min), "on the far right": ("x", max),
                      "at the top": ("y", min), "at the bottom": ("y", max)}[where]
        best = pick(objects[i][axis] for i in with_shape(shape))
        return [i for i in with_shape(shape) if objects[i][axis] == best]
    if m := re.fullmatch(r"the (largest|smallest) (\w+)", sentence):
        pick, shape = (max if m.group(1) == "largest" else min), m.group(2)
        best = pick(objects[i]["area"] for i in with_shape(shape))
        return [i for i in with_shape(shape) if objects[i]["area"] == best]
    if m := re.fullmatch(r"the (\w+) object", sentence):
        return [i for i, o in enumerate(objects) if o["color"] == m.group(1)]
    if m := re.fullmatch(r"the (\w+) (\w+)", sentence):
        return [i for i, o in enumerate(objects) if (o["color"], o["shape"]) == m.groups()]
    if m := re.fullmatch(r"the (\w+)", sentence):
        return with_shape(m.group(1))
    raise AssertionError(f"sentence matches no template: {sentence!r}")


def object_facts(shape, color, mask):
    ys, xs = np.nonzero(mask)
    return {"shape": shape, "color": color, "area": int(mask.sum()),
            "x": xs.mean(), "y": ys.mean()}


def test_written_referring_sentences_name_exactly_their_object(layout):
    coco = COCO(layout.instances_json("train"))
    with open(layout.refs_json("train")) as f:
        refs = json.load(f)
    assert refs
    for ref in refs:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[ref["image_id"]]))
        objects = [object_facts(THING_CLASSES[a["category_id"] - 1], a["attributes"]["color"],
                                decode(a["segmentation"])) for a in anns]
        target = [a["id"] for a in anns].index(ref["ann_id"])
        assert 1 <= len(ref["sentences"]) <= 3
        for sentence in ref["sentences"]:
            assert resolve(sentence, objects) == [target], (sentence, ref)


def test_generated_sentences_unambiguous_on_a_larger_sample():
    spec = SceneSpec(combos=tuple(seen_combos()))
    templates, referred, total = set(), 0, 0
    for index in range(80):
        rng = np.random.default_rng([SEED, 1000 + index])
        scene = random_scene(rng, spec)
        objects = [object_facts(o.shape, o.color, o.visible_mask) for o in scene.objects]
        for target, sentences in enumerate(referring_sentences(scene.objects, rng, limit=5)):
            total += 1
            referred += bool(sentences)
            for sentence in sentences:
                assert resolve(sentence, objects) == [target], sentence
                templates.add(re.sub(r"\b(%s)\b" % "|".join(THING_CLASSES + COLOR_NAMES), "*",
                                     sentence))
    assert referred / total > 0.8
    assert {"the *", "the * *", "the * object", "the largest *", "the * on the far left",
            "the * left of the * *", "the * above the * *"} <= templates


# --- registration -------------------------------------------------------------------------------

@pytest.fixture
def registered_tiny(tiny_root):
    names = register_shapes_benchmark(tiny_root, ShapesBenchmarkConfig(seed=SEED, **TINY))
    yield names
    register_shapes_benchmark()  # back to the default root


def check_unified_record(record, metadata):
    assert os.path.isfile(record["file_name"]) and record["height"] == record["width"] == 128
    assert "image_id" in record
    for ann in record["annotations"]:
        assert 0 <= ann["category_id"] < len(metadata.text_prompts)
        assert len(ann["bbox"]) == 4 and "bbox_mode" in ann
        if metadata.task == "detection":
            assert "segmentation" not in ann
        else:
            assert decode(ann["segmentation"]).shape == (128, 128)
        is_thing = ann["category_id"] < len(THING_CLASSES) or metadata.task == "foreground"
        assert ann.get("has_box", True) == (is_thing and metadata.task != "semantic")


def test_every_registered_name_loads(registered_tiny):
    expected = {f"mqformer_shapes_{s}{t}" for s in ("train", "val") for t in
                ("", "_instance", "_semantic", "_panoptic", "_referring", "_foreground",
                 "_detection")}
    expected |= {f"mqformer_shapes_seginw_{d.name}_{s}" for d in SUITE for s in ("train", "val")}
    assert set(registered_tiny) == expected
    for name in registered_tiny:
        records, metadata = DatasetCatalog.get(name), MetadataCatalog.get(name)
        assert records, name
        assert metadata.task in {"instance", "semantic", "panoptic", "referring", "foreground",
                                 "detection"} and metadata.evaluator_type
        for record in records:
            check_unified_record(record, metadata)
    referring = DatasetCatalog.get("mqformer_shapes_val_referring")
    assert all(ann["texts"] and len(ann["texts"]) == len(ann["sent_ids"])
               for record in referring for ann in record["annotations"])
    panoptic = DatasetCatalog.get("mqformer_shapes_val")[0]
    assert os.path.isfile(panoptic["pan_seg_file_name"])
    assert len(panoptic["segments_info"]) == len(panoptic["annotations"])


def test_registration_is_lazy_and_first_load_generates(tmp_path):
    root = tmp_path / "lazy"
    try:
        register_shapes_benchmark(str(root), ShapesBenchmarkConfig(seed=SEED, **MINIMAL))
        assert not root.exists()
        records = DatasetCatalog.get("mqformer_shapes_val_instance")
        assert len(records) == 1 and (root / "mqformer_shapes" / "manifest.json").is_file()
    finally:
        register_shapes_benchmark()


def test_seginw_suite_parses_with_pycocotools(layout):
    for dataset in SUITE:
        for split, folder in (("train", "train"), ("val", "valid")):
            json_file = layout.seginw_json(dataset.name, split)
            assert json_file.endswith(
                f"seginw/{dataset.name}/{folder}/_annotations_min1cat.coco.json")
            coco = COCO(json_file)
            assert sorted(coco.getCatIds()) == list(range(len(dataset.class_names)))
            assert [coco.cats[i]["name"] for i in range(len(coco.cats))] == dataset.class_names
            assert {a["category_id"] for a in coco.anns.values()} <= set(coco.cats)
            for image in coco.imgs.values():
                assert os.path.isfile(os.path.join(os.path.dirname(json_file), image["file_name"]))


# --- caching ------------------------------------------------------------------------------------

def test_regeneration_skipped_when_manifest_matches(tiny_root, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("regenerated although the manifest matches")

    monkeypatch.setattr(benchmark_module, "write_benchmark", fail)
    assert ensure_benchmark(tiny_root, ShapesBenchmarkConfig(seed=SEED, **TINY)) == \
        Layout.under_root(tiny_root).base


def test_changed_parameters_regenerate_without_deleting_anything(tmp_path):
    root = str(tmp_path)
    base = generate_shapes_benchmark(root, seed=1, workers=1, **MINIMAL)
    user_file = os.path.join(base, "my_notes.txt")
    with open(user_file, "w") as f:
        f.write("mine")
    generate_shapes_benchmark(root, seed=2, workers=1, **MINIMAL)
    with open(os.path.join(base, "manifest.json")) as f:
        assert json.load(f)["config"]["seed"] == 2
    (moved,) = [d for d in os.listdir(root) if d.startswith("mqformer_shapes.previous-")]
    assert open(os.path.join(root, moved, "my_notes.txt")).read() == "mine"


def test_foreign_folder_is_refused_and_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    foreign = tmp_path / "foreign" / "mqformer_shapes"
    foreign.mkdir(parents=True)
    (foreign / "data.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="no manifest"):
        generate_shapes_benchmark(str(tmp_path / "foreign"), seed=1, workers=1, **MINIMAL)
    assert (foreign / "data.txt").read_text() == "user data"

    def interrupted(base, config, workers):
        os.makedirs(os.path.join(base, "images"))
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark_module, "write_benchmark", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes_benchmark(str(tmp_path / "fresh"), seed=1, **MINIMAL)
    assert os.listdir(tmp_path / "fresh") == []


def _generation_killed_while_writing(root):
    """A process that starts writing a temporary folder the way ensure_benchmark does, then is
    killed: its folder and lock file stay, its lock is gone."""
    context = multiprocessing.get_context("fork")
    ready = context.Event()

    def generate():
        temp = tempfile.mkdtemp(prefix=benchmark_module.PARTIAL_PREFIX, dir=root)
        with open(os.path.join(temp, benchmark_module.GENERATING_LOCK), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with open(os.path.join(temp, "images.bin"), "wb") as f:
                f.write(b"\0" * 100_000)
            ready.set()
            time.sleep(60)

    process = context.Process(target=generate)
    process.start()
    assert ready.wait(30)
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)


def test_a_killed_generation_leaves_no_folder_behind_for_good(tmp_path):
    root = str(tmp_path)
    _generation_killed_while_writing(root)
    (killed,) = [d for d in os.listdir(root) if d.startswith(benchmark_module.PARTIAL_PREFIX)]
    running = tempfile.mkdtemp(prefix=benchmark_module.PARTIAL_PREFIX, dir=root)
    with open(os.path.join(running, benchmark_module.GENERATING_LOCK), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a generation still at work (its lock held)
        old = tempfile.mkdtemp(prefix=benchmark_module.PARTIAL_PREFIX, dir=root)  # no lock file, a day old
        os.utime(old, (time.time() - 86400,) * 2)
        fresh = tempfile.mkdtemp(prefix=benchmark_module.PARTIAL_PREFIX, dir=root)  # its lock not made yet
        base = generate_shapes_benchmark(root, seed=1, workers=1, **MINIMAL)
        left = set(os.listdir(root))
    assert killed not in left and os.path.basename(old) not in left
    assert {os.path.basename(running), os.path.basename(fresh), os.path.basename(base)} <= left
    assert benchmark_module.GENERATING_LOCK not in os.listdir(base)
