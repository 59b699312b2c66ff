"""The four exemplar poolings: order-free by construction, defined for K = 1, padding ignored,
K = 0 refused, and the attention weights as MIVC / attention-MIL define them."""
import pytest
import torch

from mqformer_d2.exemplars.pooling import POOLINGS, AttentionPooling, build_pooling, pool_sets


@pytest.mark.parametrize("name", POOLINGS)
def test_permuting_the_exemplars_keeps_the_embedding(name):
    torch.manual_seed(0)
    pooling = build_pooling(name, 8, 4)
    embeddings = torch.randn(3, 5, 8)
    valid = torch.ones(3, 5, dtype=torch.bool)
    pooled = pooling(embeddings, valid)
    permuted = pooling(embeddings[:, torch.randperm(5)], valid)
    torch.testing.assert_close(pooled, permuted)
    assert pooled.shape == (3, 8)


@pytest.mark.parametrize("name", POOLINGS)
def test_one_exemplar_is_its_own_prompt(name):
    pooling = build_pooling(name, 8, 4)
    single = torch.randn(2, 1, 8)
    torch.testing.assert_close(pooling(single, torch.ones(2, 1, dtype=torch.bool)), single[:, 0])


@pytest.mark.parametrize("name", POOLINGS)
def test_padding_does_not_count(name):
    torch.manual_seed(1)
    pooling = build_pooling(name, 8, 4)
    sets = [torch.randn(3, 8), torch.randn(1, 8)]
    pooled = pool_sets(pooling, sets)
    torch.testing.assert_close(pooled[0], pooling(sets[0][None], torch.ones(1, 3, dtype=torch.bool))[0])
    torch.testing.assert_close(pooled[1], sets[1][0])


@pytest.mark.parametrize("name", POOLINGS)
def test_no_exemplar_is_an_error(name):
    pooling = build_pooling(name, 8, 4)
    with pytest.raises(ValueError, match="K = 0"):
        pooling(torch.zeros(1, 0, 8), torch.zeros(1, 0, dtype=torch.bool))
    with pytest.raises(ValueError, match="K = 0"):
        pool_sets(pooling, [torch.randn(2, 8), torch.zeros(0, 8)])


@pytest.mark.parametrize("gated", [False, True])
def test_attention_weights_follow_the_definition(gated):
    torch.manual_seed(2)
    pooling = AttentionPooling(8, 4, gated=gated)
    h = torch.randn(1, 4, 8)
    hidden = torch.tanh(pooling.V(h))
    if gated:
        hidden = hidden * torch.sigmoid(pooling.U(h))
    expected = (hidden @ pooling.w.weight.T).squeeze(-1).softmax(-1)
    weights = pooling.weights(h, torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(pooling(h, torch.ones(1, 4, dtype=torch.bool)), (expected[..., None] * h).sum(1))


def test_mean_and_max():
    h = torch.tensor([[[1.0, -2.0], [3.0, 0.0]]])
    valid = torch.ones(1, 2, dtype=torch.bool)
    torch.testing.assert_close(build_pooling("mean", 2, 2)(h, valid), torch.tensor([[2.0, -1.0]]))
    torch.testing.assert_close(build_pooling("max", 2, 2)(h, valid), torch.tensor([[3.0, 0.0]]))


def test_unknown_pooling_names_the_key():
    with pytest.raises(ValueError, match="EXEMPLARS.POOLING"):
        build_pooling("median", 8, 4)
