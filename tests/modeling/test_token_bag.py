"""The text encoder's bag-of-words embedding (MODEL.MQFORMER.TEXT_ENCODER.TOKEN_BAG)."""
import torch
import torch.nn.functional as F

from mqformer_d2.modeling.text_encoder import TINY_TEXT_MODEL_NAME, OpenCLIPTextEncoder
from mqformer_d2.modeling.text_encoder.token_bag import TokenBagEmbedding


def _encoder(freeze: bool, token_bag: bool) -> OpenCLIPTextEncoder:
    torch.manual_seed(0)
    return OpenCLIPTextEncoder(model_name=TINY_TEXT_MODEL_NAME, pretrained=None, freeze=freeze,
                               output_dim=16, token_bag=token_bag)


def test_bag_averages_word_tokens_only():
    bag = TokenBagEmbedding(10, 4)
    rows = bag.embedding.weight.detach()
    # [start, 3, 5, end, pad, pad]: the start token is position 0, the end token the row's largest id.
    tokens = torch.tensor([[8, 3, 5, 9, 0, 0], [8, 3, 9, 0, 0, 0]])
    out = bag(tokens)
    assert torch.allclose(out[0], F.normalize((rows[3] + rows[5]) / 2, dim=0), atol=1e-6)
    assert torch.allclose(out[1], F.normalize(rows[3], dim=0), atol=1e-6)


def test_bag_of_the_tokenizer_output_is_the_word_rows():
    encoder = _encoder(freeze=False, token_bag=True)
    tokens = encoder.tokenizer(["triangle", "red triangle"])
    word_ids = tokens[1, 1:3].tolist()  # "red", "triangle"
    assert tokens[0, 1].item() == word_ids[1]
    rows = encoder.token_bag.embedding.weight.detach()
    bag = encoder.token_bag(tokens)
    assert torch.allclose(bag[0], F.normalize(rows[word_ids[1]], dim=0), atol=1e-6)
    assert torch.allclose(bag[1], F.normalize(rows[word_ids].mean(0), dim=0), atol=1e-6)


def test_bag_trains_under_a_frozen_tower_and_is_not_cached():
    encoder = _encoder(freeze=True, token_bag=True)
    first = encoder(["star", "cross"])
    first.sum().backward()
    assert encoder.token_bag.embedding.weight.grad.abs().sum() > 0
    with torch.no_grad():
        encoder.token_bag.embedding.weight.mul_(2.0).add_(1.0)
    assert not torch.allclose(encoder(["star", "cross"]), first)  # a cached value would not change


def test_encoder_without_bag_has_no_bag_parameters():
    encoder = _encoder(freeze=False, token_bag=False)
    assert encoder.token_bag is None
    assert not any("token_bag" in name for name, _ in encoder.named_parameters())
    assert encoder([]).shape == (0, 16)
