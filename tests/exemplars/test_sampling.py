"""Exemplar sampling: fixed evaluation sets (seeded, from distinct images, kept in a JSON file),
the exemplar stage's draws from other images, and the text batch with exemplar prompts."""
import json

import pytest
import torch

from mqformer_d2.exemplars.sampling import (ClassSampler, ObjectRecord, dataset_objects, draw_exemplar_sets,
                                            read_exemplar_sets, write_exemplar_sets)
from mqformer_d2.exemplars.training import StageSettings, alignment_loss, exemplar_text_batch
from mqformer_d2.modeling.text_batch import TextBatch


def _objects():
    return [ObjectRecord(f"{i}.png", i, "circle" if j % 2 == 0 else "star", 10 * i + j, [0, 0, 5 + j, 5])
            for i in range(6) for j in range(3)]


def test_dataset_objects_reads_boxed_annotations():
    record = {"file_name": "a.png", "image_id": 7, "annotations": [
        {"bbox": [1, 2, 3, 4], "bbox_mode": 1, "category_id": 1, "id": 5},
        {"bbox": [0, 0, 0, 4], "bbox_mode": 1, "category_id": 0, "id": 6},  # zero width: skipped
        {"bbox": [1, 2, 3, 4], "bbox_mode": 1, "category_id": 0, "id": 8, "has_box": False}]}
    assert dataset_objects([record], ["circle", "star"]) == [ObjectRecord("a.png", 7, "star", 5, [1.0, 2.0, 4.0, 6.0])]


def test_sets_are_seeded_and_take_distinct_images_first():
    sets = draw_exemplar_sets(_objects(), ["circle", "star"], max_k=5, episodes=2, seed=3)
    assert sets == draw_exemplar_sets(_objects(), ["circle", "star"], max_k=5, episodes=2, seed=3)
    assert sets != draw_exemplar_sets(_objects(), ["circle", "star"], max_k=5, episodes=2, seed=4)
    for episodes in sets.values():
        assert len(episodes) == 2
        for episode in episodes:
            assert len({o.image_id for o in episode}) == 5  # 6 images hold each class: all distinct
    circles = draw_exemplar_sets(_objects(), ["circle"], max_k=7, episodes=1, seed=0)["circle"][0]
    assert len({o.annotation_id for o in circles}) == 7 and all(o.class_name == "circle" for o in circles)  # 6 images, then a 2nd object
    assert len({o.image_id for o in circles[:6]}) == 6


def test_too_few_objects_is_an_error():
    with pytest.raises(ValueError, match="'star' has 6 objects, fewer than K = 9"):
        draw_exemplar_sets(_objects(), ["star"], max_k=9, episodes=1, seed=0)


def test_sets_file_round_trip_and_is_never_overwritten(tmp_path):
    path = str(tmp_path / "sets.json")
    sets = draw_exemplar_sets(_objects(), ["circle"], max_k=2, episodes=1, seed=0)
    write_exemplar_sets(path, {"val": {"source": "train", "sets": sets}}, seed=0)
    assert read_exemplar_sets(path) == {"val": {"source": "train", "sets": sets}}
    with pytest.raises(FileExistsError, match="reused"):
        write_exemplar_sets(path, {"val": {"source": "train", "sets": sets}}, seed=1)
    (tmp_path / "bad.json").write_text(json.dumps({"version": 1, "evaluations": {"val": {"sets": {}}}}))
    with pytest.raises(ValueError, match="bad.json.*source"):
        read_exemplar_sets(str(tmp_path / "bad.json"))


def test_stage_draws_come_from_other_images():
    class_ids = torch.tensor([0, 0, 0, 1, 0])
    image_ids = torch.tensor([1, 2, 3, 3, 4])
    sampler = ClassSampler(class_ids, image_ids, torch.Generator().manual_seed(0))
    for _ in range(20):
        drawn = sampler.draw(0, 2, exclude_images=[1, 3])
        assert sorted(drawn.tolist()) == [1, 4]
    assert sampler.draw(0, 3, exclude_images=[1, 3]) is None
    assert sampler.draw(5, 1, exclude_images=[]) is None


def test_text_batch_rows_are_replaced_by_the_share(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    cache = {"regions": torch.randn(6, 5, 64), "classes": ["circle", "star"],
             "class_ids": torch.tensor([0, 0, 0, 1, 1, 1]), "image_ids": torch.tensor([1, 2, 3, 1, 2, 3])}
    text = TextBatch(["star", "sky", "circle"], torch.randn(3, 64), torch.ones(1, 3, dtype=torch.bool),
                     [torch.arange(3)])
    sampler = ClassSampler(cache["class_ids"], cache["image_ids"], torch.Generator().manual_seed(0))
    every = StageSettings(exemplar_share=1.0, max_k=2)
    replaced, prompts, class_ids = exemplar_text_batch(model, text, [1], cache, sampler, every,
                                                       torch.Generator().manual_seed(0))
    assert class_ids.tolist() == [1, 0] and replaced.embeddings.requires_grad
    torch.testing.assert_close(replaced.embeddings[[0, 2]], prompts)
    torch.testing.assert_close(replaced.embeddings[1], text.embeddings[1])  # "sky" has no exemplars
    assert not torch.allclose(replaced.embeddings[0], text.embeddings[0])
    none, prompts, class_ids = exemplar_text_batch(model, text, [1], cache, sampler,
                                                   StageSettings(exemplar_share=0.0), torch.Generator())
    assert prompts is None and len(class_ids) == 0 and none is text


def test_alignment_loss_prefers_the_own_class(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    with torch.no_grad():
        texts = model.text_encoder(["circle", "star"], use_templates=False)
    good = alignment_loss(model, texts, torch.tensor([0, 1]), ["circle", "star"])
    swapped = alignment_loss(model, texts.flip(0), torch.tensor([0, 1]), ["circle", "star"])
    assert good < swapped
