"""Inference with text, exemplar and negative-exemplar prompts in one call."""
import pytest
import torch

from mqformer_d2.exemplars.inputs import make_exemplar
from mqformer_d2.exemplars.prompting import (NEGATIVE_SUPPRESSION, prompt_embeddings, prompted_inference,
                                             suppress_negatives)

torch.set_num_threads(1)


def _input(vocabulary, task="instance"):
    image = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    return {"image": image, "vocabulary": list(vocabulary), "task": task}


def test_text_only_matches_the_models_own_inference(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    with torch.no_grad():
        own = model([_input(["circle", "star"])])[0]["instances"]
        prompted = prompted_inference(model, [_input(["circle", "star"])], {})[0]["instances"]
    torch.testing.assert_close(prompted.scores, own.scores)
    torch.testing.assert_close(prompted.pred_masks, own.pred_masks)


def test_an_exemplar_prompt_stands_where_its_text_stood(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    image = _input([])["image"]
    with torch.no_grad():
        embeddings = prompt_embeddings(model, {"part 4711": [make_exemplar(image, [8, 8, 40, 40], "e")]})
        text = prompted_inference(model, [_input(["part 4711", "star"])], {})[0]["instances"]
        exemplar = prompted_inference(model, [_input(["part 4711", "star"])], embeddings)[0]["instances"]
    assert not torch.allclose(text.scores, exemplar.scores)
    assert set(exemplar.pred_classes.tolist()) <= {0, 1}


def test_negatives_suppress_and_stay_hidden(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    image = _input([])["image"]
    with torch.no_grad():
        embeddings = prompt_embeddings(model, {"part": [make_exemplar(image, [8, 8, 40, 40], "p")],
                                               "not part": [make_exemplar(image, [30, 30, 60, 60], "n")]})
        plain = prompted_inference(model, [_input(["part", "star"], "semantic")], {"part": embeddings["part"]})[0]
        both = prompted_inference(model, [_input(["part", "star"], "semantic")], {"part": embeddings["part"]},
                                  negatives={"part": embeddings["not part"]})[0]
        # the negative's own embedding as the negative of a text prompt: every query it beats is dropped
        same = prompted_inference(model, [_input(["part", "star"], "semantic")], {"part": embeddings["part"]},
                                  negatives={"part": embeddings["part"]})[0]
    assert both["sem_seg"].shape[0] == 2  # the hidden negative prompt is not an output
    assert (both["sem_seg"][0] <= plain["sem_seg"][0] + 1e-6).all()
    torch.testing.assert_close(same["sem_seg"][1], plain["sem_seg"][1])


def test_suppression_rule():
    logits = torch.tensor([[[2.0, 0.0, 3.0], [1.0, 0.0, -1.0]]])
    out = suppress_negatives(logits, positive=0, negative=2)
    assert out[0, 0, 0] == pytest.approx(2.0 - NEGATIVE_SUPPRESSION)
    assert out[0, 1, 0] == 1.0 and torch.equal(out[..., 1:], logits[..., 1:])


def test_prompts_must_be_in_the_vocabulary(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    with pytest.raises(ValueError, match="lacks the prompts"):
        prompted_inference(model, [_input(["star"])], {"part": torch.zeros(64)})
