"""The exemplar encoder: read-outs under boxes and masks, embeddings in the text embeddings'
space, any image sizes, chunked encoding, and the errors for bad exemplars."""
import numpy as np
import pytest
import torch
from exemplar_models import exemplar_model

from mqformer_d2.data.images import ImageReadError
from mqformer_d2.exemplars.encoder import ExemplarEncoder
from mqformer_d2.exemplars.images import ExemplarImages
from mqformer_d2.exemplars.inputs import make_exemplar
from mqformer_d2.exemplars.prompting import exemplar_regions, prompt_embeddings
from mqformer_d2.exemplars.regions import feature_maps, pool_regions
from mqformer_d2.modeling.pixel_decoder import PixelDecoderOutput

torch.set_num_threads(1)


def _image(height, width, seed=0):
    return torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _constant_pixel_output(value_by_level):
    """A pixel-decoder output of one 64x64 image whose every level is a constant map."""
    shapes = torch.tensor([[8, 8], [4, 4]])
    memory = torch.cat([torch.full((1, 64, 2), v) for v in value_by_level[:1]] +
                       [torch.full((1, 16, 2), v) for v in value_by_level[1:2]], dim=1)
    mask_features = torch.zeros(1, 2, 16, 16)
    mask_features[..., :8, :] = value_by_level[2]  # top half only
    return PixelDecoderOutput(memory, shapes, torch.tensor([0, 64]), [(8, 8), (4, 4)], torch.zeros(1, 80, dtype=torch.bool),
                              torch.ones(1, 2, 2), mask_features, torch.ones(1, 2))


def test_read_outs_average_each_map_under_the_box():
    pixel = _constant_pixel_output([1.0, 2.0, 3.0])
    assert [tuple(m.shape) for m in feature_maps(pixel)] == [(1, 2, 8, 8), (1, 2, 4, 4), (1, 2, 16, 16)]
    top = pool_regions(pixel, 64, torch.tensor([[8.0, 4.0, 40.0, 24.0]]), torch.tensor([0]))
    torch.testing.assert_close(top[0, :, 0], torch.tensor([1.0, 2.0, 3.0]))
    # A mask in the bottom half of a full-image box reads only the (zero) bottom of the mask features.
    mask = torch.zeros(1, 64, 64)
    mask[:, 40:, :] = 1
    bottom = pool_regions(pixel, 64, torch.tensor([[0.0, 0.0, 64.0, 64.0]]), torch.tensor([0]), mask)
    assert bottom[0, 2, 0] < 0.05 and bottom[0, 0, 0] == pytest.approx(1.0)


def test_embeddings_are_unit_vectors_of_the_decoder_width(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    with torch.no_grad():
        embeddings = prompt_embeddings(model, {
            "a": [make_exemplar(_image(64, 64), [2, 3, 30, 40], "a0"), make_exemplar(_image(40, 90, 1), [0, 0, 20, 20], "a1")],
            "b": [make_exemplar(_image(64, 64), [10, 10, 50, 50], "b0")],
        })
    assert set(embeddings) == {"a", "b"}
    for vector in embeddings.values():
        assert vector.shape == (64,)
        assert vector.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_mask_exemplars_differ_from_their_box(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    image = _image(64, 64)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[10:40, 10:20] = True
    mask[10:20, 20:40] = True  # an L shape: its box holds much background
    with torch.no_grad():
        regions = exemplar_regions(model, [make_exemplar(image, mask, "m"), make_exemplar(image, [10, 10, 40, 40], "b")])
    assert make_exemplar(image, mask, "m").box.tolist() == [10, 10, 40, 40]
    assert not torch.allclose(regions[0], regions[1])


def test_chunking_gives_the_same_read_outs_in_bounded_batches(tiny_exemplar_model, monkeypatch):
    model, _ = tiny_exemplar_model
    exemplars = [make_exemplar(_image(48 + 8 * (i % 3), 64, i), [4, 4, 30, 30], f"e{i}") for i in range(7)]
    with torch.no_grad():
        together = exemplar_regions(model, exemplars, images_per_chunk=16)
        sizes = []
        original = model.backbone.forward
        monkeypatch.setattr(model.backbone, "forward", lambda x: sizes.append(len(x)) or original(x))
        chunked = exemplar_regions(model, exemplars, images_per_chunk=3)
    assert max(sizes) == 3 and sum(sizes) == 7
    # Padding differs between the batches; the read-outs stay close.
    torch.testing.assert_close(chunked, together, atol=1e-3, rtol=1e-3)


def test_exemplars_on_one_image_encode_it_once(tiny_exemplar_model, monkeypatch):
    model, _ = tiny_exemplar_model
    image = _image(64, 64)
    sizes = []
    original = model.backbone.forward
    monkeypatch.setattr(model.backbone, "forward", lambda x: sizes.append(len(x)) or original(x))
    with torch.no_grad():
        exemplar_regions(model, [make_exemplar(image, [0, 0, 20, 20], "a"), make_exemplar(image, [20, 20, 60, 60], "b")])
    assert sizes == [1]


@pytest.mark.parametrize("box, message", [
    ([10, 10, 10, 30], "zero area"), ([5, 5, 2, 30], "zero area"), ([0, 0, 80, 20], "outside"),
    ([-10, 0, 20, 20], "outside"), ([1, 2, 3], "4 finite numbers"), ([0, 0, float("nan"), 5], "4 finite numbers"),
])
def test_bad_boxes_are_refused_naming_the_exemplar(box, message):
    with pytest.raises(ValueError, match=message) as error:
        make_exemplar(_image(64, 64), box, "exemplar 3 of 'part 4711'")
    assert "exemplar 3 of 'part 4711'" in str(error.value)


def test_empty_mask_is_refused():
    with pytest.raises(ValueError, match="mask is empty"):
        make_exemplar(_image(32, 32), torch.zeros(32, 32, dtype=torch.bool), "m")


def test_no_exemplar_and_no_encoder_are_refused(tiny_exemplar_model):
    model, _ = tiny_exemplar_model
    with pytest.raises(ValueError, match="K = 0"):
        prompt_embeddings(model, {"empty": []})
    with pytest.raises(ValueError, match="K = "):
        model.exemplar_encoder([torch.zeros(0, 5, 64)])
    without = exemplar_model("mean", "MODEL.MQFORMER.EXEMPLARS.ENABLED", False)[0]
    with pytest.raises(ValueError, match="EXEMPLARS.ENABLED"):
        prompt_embeddings(without, {"a": [make_exemplar(_image(32, 32), [0, 0, 8, 8], "a")]})


def test_unreadable_exemplar_image_is_named(tiny_exemplar_model, tmp_path):
    _, cfg = tiny_exemplar_model
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="broken.png"):
        ExemplarImages(cfg).exemplar(str(broken), [0, 0, 4, 4], "exemplar")


def test_images_are_resized_with_their_boxes(tiny_exemplar_model):
    _, cfg = tiny_exemplar_model  # test size 64, max size 64: a 32 x 48 image is resized to 43 x 64
    reader = ExemplarImages(cfg)
    array = np.zeros((32, 48, 3), dtype=np.uint8)
    exemplar = reader.exemplar(array, [4, 8, 24, 16], "e")
    height, width = exemplar.image.shape[1:]
    assert width == 64 and height in (42, 43)
    sx, sy = width / 48, height / 32
    torch.testing.assert_close(exemplar.box, torch.tensor([4 * sx, 8 * sy, 24 * sx, 16 * sy]))
    with pytest.raises(ValueError, match="outside"):
        reader.exemplar(array, [4, 8, 60, 16], "e")


def test_encoder_checks_its_read_out_shape():
    encoder = ExemplarEncoder(num_maps=3, dim=8, pooling="mean")
    with pytest.raises(ValueError, match=r"\(K, 3, C\)"):
        encoder.embed(torch.zeros(2, 4, 8))
