"""Each model component built directly with tiny sizes; shapes asserted."""
import pytest
import torch
from detectron2.layers import ShapeSpec

from mqformer_d2.layers import masks_to_normalized_boxes, token_centers
from mqformer_d2.modeling.backbone import TimmSwinBackbone
from mqformer_d2.modeling.decoder import MixedQueryDecoder
from mqformer_d2.modeling.denoising import dn_attention_mask
from mqformer_d2.modeling.pixel_decoder import MSDeformAttnPixelDecoder
from mqformer_d2.modeling.text_batch import TextBatch
from mqformer_d2.modeling.text_encoder import TINY_TEXT_MODEL_NAME, OpenCLIPTextEncoder

torch.set_num_threads(2)
DIM = 32


@pytest.fixture(scope="module")
def text_encoder():
    torch.manual_seed(0)
    return OpenCLIPTextEncoder(
        model_name=TINY_TEXT_MODEL_NAME, pretrained=None, freeze=True, output_dim=DIM,
        prompt_templates=["a photo of a {}.", "a {} in the scene."],
    )


def test_text_encoder_shapes_cache_and_templates(text_encoder):
    text_encoder._cache.clear()
    out = text_encoder(["cat", "dog", "a man riding a horse"])
    assert out.shape == (3, DIM)
    assert len(text_encoder._cache) == 3
    again = text_encoder(["dog", "cat"])
    torch.testing.assert_close(again, out[[1, 0]])
    assert len(text_encoder._cache) == 3  # nothing re-encoded
    templated = text_encoder(["cat"], use_templates=True)
    assert templated.shape == (1, DIM) and not torch.allclose(templated, out[:1])
    assert text_encoder([]).shape == (0, DIM)


def test_text_encoder_is_frozen_except_projection(text_encoder):
    trainable = [n for n, p in text_encoder.named_parameters() if p.requires_grad]
    assert trainable == ["projection.weight", "projection.bias"]
    text_encoder.train()
    assert not text_encoder.clip.training


def test_text_encoder_cache_cleared_on_weight_load(text_encoder):
    text_encoder(["cat"])
    state = {k: v.clone() for k, v in text_encoder.state_dict().items()}
    text_encoder.load_state_dict(state)
    assert len(text_encoder._cache) == 0


def test_text_encoder_rejects_bad_templates():
    with pytest.raises(ValueError, match="PROMPT_TEMPLATES"):
        OpenCLIPTextEncoder(model_name=TINY_TEXT_MODEL_NAME, pretrained=None, freeze=True,
                            output_dim=DIM, prompt_templates=["no placeholder"])


def _backbone_features(batch=2, height=64, width=96):
    shapes = {"res2": ShapeSpec(channels=8, stride=4), "res3": ShapeSpec(channels=16, stride=8),
              "res4": ShapeSpec(channels=24, stride=16), "res5": ShapeSpec(channels=32, stride=32)}
    features = {n: torch.randn(batch, s.channels, height // s.stride, width // s.stride) for n, s in shapes.items()}
    return shapes, features


def _pixel_decoder(shapes, num_layers=1):
    return MSDeformAttnPixelDecoder(
        input_shape=shapes, in_features=["res3", "res4", "res5"], mask_in_feature="res2", hidden_dim=DIM,
        num_extra_levels=1, num_layers=num_layers, num_heads=4, num_points=2, dim_feedforward=64, dropout=0.0,
    )


def _padding_mask(batch=2, height=64, width=96):
    mask = torch.zeros(batch, height, width, dtype=torch.bool)
    mask[1, 48:] = True  # image 1 is 48 x 64 inside the 64 x 96 batch
    mask[1, :, 64:] = True
    return mask


def test_pixel_decoder_shapes():
    torch.manual_seed(0)
    shapes, features = _backbone_features()
    out = _pixel_decoder(shapes)(features, _padding_mask())
    # strides 8, 16, 32, 64 on a 64 x 96 input
    assert out.spatial_shapes.tolist() == [[8, 12], [4, 6], [2, 3], [1, 2]]
    assert out.level_start_index.tolist() == [0, 96, 120, 126]
    assert out.memory.shape == (2, 128, DIM)
    assert out.padding_mask.shape == (2, 128)
    assert out.valid_ratios.shape == (2, 4, 2)
    torch.testing.assert_close(out.valid_ratios[1, 0], torch.tensor([8 / 12, 6 / 8]))
    torch.testing.assert_close(out.mask_valid_ratio[1], torch.tensor([64 / 96, 48 / 64]))
    assert out.mask_features.shape == (2, DIM, 16, 24)


def test_pixel_decoder_names_missing_feature():
    shapes, _ = _backbone_features()
    del shapes["res2"]
    with pytest.raises(ValueError, match="res2"):
        _pixel_decoder(shapes)


def _decoder(num_learnable=3, num_conditional=5, layers=2, **options):
    return MixedQueryDecoder(
        hidden_dim=DIM, num_learnable=num_learnable, num_conditional=num_conditional, num_layers=layers,
        num_heads=4, num_points=2, num_levels=4, dim_feedforward=64, dropout=0.0,
        mask_enhanced_anchors=True, initial_prediction=True, **options,
    )


def _decoder_inputs():
    torch.manual_seed(0)
    shapes, features = _backbone_features()
    pixel = _pixel_decoder(shapes)(features, _padding_mask())
    text = TextBatch.from_vocabularies([["a", "b", "c"], ["b", "d"]], lambda texts: torch.randn(len(texts), DIM))
    assert text.valid.tolist() == [[True, True, True, False], [False, True, False, True]]
    return pixel, text


def test_token_centers_are_cell_centres_relative_to_the_unpadded_image():
    shapes = torch.tensor([[2, 4], [1, 2]])
    ratios = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.5, 1.0], [0.5, 1.0]]])  # image 1: right half padded
    centers = token_centers(shapes, ratios)
    assert centers.shape == (2, 10, 2)
    assert centers[0, :4].tolist() == [[0.125, 0.25], [0.375, 0.25], [0.625, 0.25], [0.875, 0.25]]
    assert centers[1, 8:].tolist() == [[0.5, 0.5], [1.5, 0.5]]  # the padded cell lies beyond 1


def test_text_batch_gives_back_each_images_vocabulary():
    embedded = []
    text = TextBatch.from_vocabularies([["a", "b", "a"], ["c", "b"]],
                                       lambda texts: embedded.append(texts) or torch.zeros(len(texts), DIM))
    assert embedded == [["a", "b", "c"]] and text.embeddings.shape == (3, DIM)  # the union, embedded once
    assert text.texts == ["a", "b", "c"]
    assert text.vocabulary(0) == ["a", "b", "a"] and text.vocabulary(1) == ["c", "b"]


@pytest.mark.parametrize("num_learnable,num_conditional", [(3, 5), (8, 0), (0, 8)])
def test_decoder_output_shapes(num_learnable, num_conditional):
    pixel, text = _decoder_inputs()
    decoder = _decoder(num_learnable, num_conditional)
    out = decoder(pixel, text)
    q = num_learnable + num_conditional
    assert out["pred_logits"].shape == (2, q, 4)
    assert out["pred_boxes"].shape == (2, q, 4)
    assert ((out["pred_boxes"] >= 0) & (out["pred_boxes"] <= 1)).all()
    assert out["pred_masks"].shape == (2, q, 16, 24)
    assert "text_valid" not in out  # the criterion takes the text batch as an argument
    assert len(out["aux_outputs"]) == 2  # initial prediction + first layer
    assert out["query_types"].tolist() == [0] * num_learnable + [1] * num_conditional
    assert ("interm_outputs" in out) == (num_conditional > 0)
    if num_conditional:
        assert out["interm_outputs"]["pred_masks"].shape == (2, num_conditional, 16, 24)
        centers = out["selected_token_centers"]
        assert centers.shape == (2, num_conditional, 2) and ((centers > 0) & (centers < 1)).all()
        assert "token_centers" not in out["interm_outputs"]  # the matcher sees predictions only
    # A direction of the dual cross-attention exists only when both query sets do.
    has_dual = decoder.layers[0].learnable_to_conditional is not None
    assert has_dual == (num_learnable > 0 and num_conditional > 0)


def test_box_refinement_looks_forward_exactly_twice():
    """DINO: layer i's box loss reaches layer i's and layer i-1's deltas, never layer i-2's."""
    pixel, text = _decoder_inputs()
    decoder = _decoder(num_learnable=3, num_conditional=0, layers=3)
    decoder.initial_prediction = False
    heads = decoder.heads
    deltas = []
    original = heads.forward_prediction_heads

    def recording(queries, mask_features, text_embeddings):
        logits, masks, box_deltas = original(queries, mask_features, text_embeddings)
        leaf = box_deltas.detach().requires_grad_(True)  # cut every other path to the layer
        deltas.append(leaf)
        return logits, masks, leaf

    heads.forward_prediction_heads = recording
    out = decoder(pixel, text)
    out["pred_boxes"].sum().backward()  # the last (third) layer's boxes
    first, second, third = (d.grad for d in deltas)
    assert first is None or not first.any()
    assert second is not None and second.abs().sum() > 0
    assert third is not None and third.abs().sum() > 0


def test_decoder_rejects_zero_queries():
    with pytest.raises(ValueError, match="NUM_LEARNABLE_QUERIES"):
        _decoder(0, 0)


def test_denoising_prefix_is_invisible_to_matching_queries():
    pixel, text = _decoder_inputs()
    decoder = _decoder().eval()
    num_dn, num_match = 4, decoder.num_queries
    mask = dn_attention_mask(2, 2, num_match, torch.device("cpu"))

    class Prefix:
        def __init__(self, seed):
            g = torch.Generator().manual_seed(seed)
            self.content = torch.randn(2, num_dn, DIM, generator=g)
            self.reference_boxes = torch.randn(2, num_dn, 4, generator=g)
            self.attn_mask = mask

    first = decoder(pixel, text, Prefix(1))
    second = decoder(pixel, text, Prefix(2))
    plain = decoder(pixel, text)
    assert first["dn_outputs"]["pred_logits"].shape == (2, num_dn, 4)
    assert len(first["dn_outputs"]["aux_outputs"]) == 2
    for key in ("pred_logits", "pred_boxes", "pred_masks"):
        torch.testing.assert_close(first[key], second[key])
        torch.testing.assert_close(first[key], plain[key])
    assert not torch.allclose(first["dn_outputs"]["pred_boxes"], second["dn_outputs"]["pred_boxes"])


def test_masks_to_boxes():
    logits = -torch.ones(2, 4, 8)
    logits[0, 1:3, 2:6] = 1.0
    boxes, non_empty = masks_to_normalized_boxes(logits)
    torch.testing.assert_close(boxes[0], torch.tensor([2 / 8, 1 / 4, 6 / 8, 3 / 4]))
    assert non_empty.tolist() == [True, False]
    assert boxes[1].abs().sum() == 0


def test_swin_backbone_shapes():
    torch.manual_seed(0)
    backbone = TimmSwinBackbone(model_name="swin_tiny_patch4_window7_224",
                                out_features=["res2", "res3", "res4", "res5"], drop_path_rate=0.0)
    shapes = backbone.output_shape()
    assert {n: (s.channels, s.stride) for n, s in shapes.items()} == {
        "res2": (96, 4), "res3": (192, 8), "res4": (384, 16), "res5": (768, 32)}
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 64, 96))
    for name, spec in shapes.items():
        assert out[name].shape == (1, spec.channels, 64 // spec.stride, 96 // spec.stride)


def test_class_similarity_and_fixed_scale():
    """"dot" is the unnormalised product / sqrt(C); a fixed scale is a constant, not a parameter."""
    from mqformer_d2.modeling.decoder import TextSimilarityClassifier

    torch.manual_seed(0)
    queries, texts = torch.randn(1, 3, DIM), torch.randn(5, DIM)
    dot = TextSimilarityClassifier(DIM, "dot")
    expected = dot.query_projection(queries) @ texts.T / DIM ** 0.5 + dot.bias
    torch.testing.assert_close(dot(queries, texts), expected)
    fixed = TextSimilarityClassifier(DIM, "cosine", fixed_logit_scale=50.0)
    assert "log_scale" not in dict(fixed.named_parameters()) and abs(float(fixed.logit_scale) - 50.0) < 1e-4
    cosine = torch.nn.functional.normalize(fixed.query_projection(queries), dim=-1) @ \
        torch.nn.functional.normalize(texts, dim=-1).T
    torch.testing.assert_close(fixed(queries, texts), 50.0 * cosine + fixed.bias)
    with pytest.raises(ValueError, match="similarity"):
        TextSimilarityClassifier(DIM, "euclidean")


def test_denoising_content_projection_maps_the_prefix_only():
    """With CONTENT_PROJECTION the denoising content goes through Linear + LayerNorm (so it
    reaches the decoder at norm ~sqrt(C)); the matching queries' outputs do not change."""
    pixel, text = _decoder_inputs()
    torch.manual_seed(1)
    projected = _decoder(denoising_content_projection=True).eval()
    assert projected.denoising_content is not None and _decoder().denoising_content is None
    seen = {}
    projected.layers[0].register_forward_pre_hook(lambda module, args: seen.update(queries=args[0]))

    class Prefix:
        content = torch.randn(2, 4, DIM) * 0.1
        reference_boxes = torch.randn(2, 4, 4)
        attn_mask = dn_attention_mask(2, 2, projected.num_queries, torch.device("cpu"))

    with_prefix = projected(pixel, text, Prefix())
    norms = seen["queries"][:, :4].norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, DIM ** 0.5), rtol=0.05)
    torch.testing.assert_close(with_prefix["pred_logits"], projected(pixel, text)["pred_logits"])


def test_round_robin_gives_every_text_its_best_token_first():
    from mqformer_d2.modeling.decoder.query_selection import _round_robin

    # Two texts; "stuff" (column 0) scores tokens 0-3 highest, the thing (column 1) token 7 best.
    values = torch.tensor([[9.0, 2.0], [8.0, 1.0], [7.0, 0.5]])
    tokens = torch.tensor([[0, 7], [1, 0], [2, 5]])
    assert _round_robin(values, tokens, 3).tolist() == [0, 7, 1]  # best-text ranking: 0, 1, 2
    assert _round_robin(values, tokens, 5).tolist() == [0, 7, 1, 2, 5]  # token 0 is not taken twice
    unusable = torch.full((3, 2), float("-inf"))
    assert _round_robin(unusable, tokens, 2) is None
    few = values.clone()
    few[1:] = float("-inf")
    assert _round_robin(few, tokens, 4).tolist() == [0, 7, 0, 7]


def test_per_text_selection_runs_in_the_decoder():
    pixel, text = _decoder_inputs()
    decoder = _decoder(3, 5, selection_ranking="per_text")
    assert decoder.selector.ranking == "per_text"
    out = decoder(pixel, text)
    assert out["pred_logits"].shape == (2, 8, 4)
    with pytest.raises(ValueError, match="SELECTION_RANKING"):
        _decoder(3, 5, selection_ranking="random")
