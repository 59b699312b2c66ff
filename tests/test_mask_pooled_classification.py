"""The optional mask-pooled classification input of the prediction heads (not in the paper)."""
import torch

from mqformer_d2.modeling.decoder.prediction_heads import PredictionHeads, mask_pooled_features

torch.set_num_threads(1)


def test_pooling_averages_the_features_under_each_mask():
    features = torch.arange(2 * 4, dtype=torch.float32).reshape(1, 2, 2, 2)  # (B=1, C=2, 2, 2)
    logits = torch.full((1, 2, 2, 2), -30.0)
    logits[0, 0, 0, :] = 30.0  # query 0: the top row
    logits[0, 1] = 30.0  # query 1: everything
    pooled = mask_pooled_features(logits, features)
    torch.testing.assert_close(pooled[0, 0], features[0, :, 0, :].mean(-1))
    torch.testing.assert_close(pooled[0, 1], features[0].flatten(1).mean(-1))


def test_heads_start_as_the_papers_and_train_the_pixel_embeddings_not_the_masks():
    torch.manual_seed(0)
    plain, pooled = PredictionHeads(8), PredictionHeads(8, mask_pooled_classification=True)
    pooled.load_state_dict(plain.state_dict(), strict=False)
    queries, texts = torch.randn(2, 3, 8), torch.randn(5, 8)
    features = torch.randn(2, 8, 4, 4, requires_grad=True)
    expected = plain.forward_prediction_heads(queries, features, texts)
    actual = pooled.forward_prediction_heads(queries, features, texts)
    for a, b in zip(actual, expected):
        torch.testing.assert_close(a, b)  # zero-initialised projection: the paper's head at first

    torch.nn.init.normal_(pooled.pooled_projection.weight)
    logits, _, _ = pooled.forward_prediction_heads(queries, features, texts)
    logits.sum().backward()
    assert features.grad.abs().sum() > 0  # the class loss reaches the pixel embeddings...
    # ...and not the mask head through the pooling weights (only through the query, unused here).
    assert all(p.grad is None for p in pooled.mask_embed.parameters())
