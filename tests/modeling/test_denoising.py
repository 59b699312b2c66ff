"""Denoising queries: layout, noise statistics, the attention mask and, end to end, that matching
queries cannot see denoising queries."""

import pytest
import torch
from helpers import make_targets
from torch import nn

from mqformer_d2.modeling.denoising import (
    build_denoising_queries,
    dn_attention_mask,
    noise_boxes,
    noise_labels,
)

D, T = 16, 7


def vocab(batch, texts=(0, 1, 2, 3)):
    valid = torch.zeros(batch, T, dtype=torch.bool)
    valid[:, list(texts)] = True
    return valid


def test_attention_mask_semantics():
    groups, size, n_match = 3, 2, 4
    mask = dn_attention_mask(groups, size, n_match, torch.device("cpu"))
    n_dn = groups * size
    assert mask.shape == (n_dn + n_match, n_dn + n_match) and mask.dtype == torch.bool
    assert mask[n_dn:, :n_dn].all()  # matching rows never attend DN columns
    assert not mask[n_dn:, n_dn:].any()  # matching queries see each other
    assert not mask[:n_dn, n_dn:].any()  # DN queries may read the matching queries
    for g in range(groups):
        rows = slice(g * size, (g + 1) * size)
        own = torch.zeros(n_dn, dtype=torch.bool)
        own[rows] = True
        assert not mask[rows, :n_dn][:, own].any()  # a group sees itself
        assert mask[rows, :n_dn][:, ~own].all()  # and no other group
    assert not mask.diagonal().any()  # no row is fully blocked (softmax would give NaN)


def test_layout_content_and_indices():
    gen = torch.Generator().manual_seed(0)
    targets = make_targets([3, 0, 2], gen)
    emb = torch.randn(T, D, generator=gen)
    dn = build_denoising_queries(
        targets,
        emb,
        vocab(3),
        num_matching_queries=5,
        dn_query_budget=10,
        label_noise_ratio=0.5,
        box_noise_scale=0.4,
        generator=gen,
    )
    meta = dn.meta
    assert (meta["num_groups"], meta["group_size"], meta["num_dn_queries"]) == (3, 3, 9)
    assert dn.content.shape == (3, 9, D) and dn.reference_boxes.shape == (3, 9, 4)
    assert dn.attn_mask.shape == (14, 14)
    # content is the embedding of the (noised) label; padding slots are zero
    valid = meta["valid"]
    assert torch.allclose(dn.content[valid], emb[meta["labels"][valid]])
    assert torch.all(dn.content[~valid] == 0) and torch.all(dn.reference_boxes[~valid] == 0)
    assert torch.allclose(dn.reference_boxes[valid], torch.logit(meta["boxes"][valid], eps=1e-5))
    # query g * S + k reconstructs target k
    rows, cols = meta["dn_indices"][0]
    assert rows.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8] and cols.tolist() == [0, 1, 2] * 3
    assert meta["dn_indices"][1][0].numel() == 0  # image without targets
    rows, cols = meta["dn_indices"][2]
    assert rows.tolist() == [0, 1, 3, 4, 6, 7] and cols.tolist() == [0, 1] * 3
    assert torch.equal(valid[2], torch.tensor([True, True, False] * 3))


def test_batch_without_targets_disables_dn():
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(T, D)
    assert (
        build_denoising_queries(make_targets([0, 0], gen), emb, vocab(2), num_matching_queries=3)
        is None
    )


def test_per_image_embeddings_and_gradient():
    gen = torch.Generator().manual_seed(2)
    emb = torch.randn(2, T, D, requires_grad=True)
    dn = build_denoising_queries(make_targets([2, 1], gen), emb, vocab(2), num_matching_queries=3)
    labels = dn.meta["labels"]
    assert torch.allclose(dn.content[1, 0], emb[1, labels[1, 0]])
    dn.content.sum().backward()  # DN trains the text projection
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_label_noise_statistics():
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (2, 5000), generator=gen)
    valid = torch.ones_like(labels, dtype=torch.bool)
    valid[:, -1000:] = False
    noised = noise_labels(labels, valid, vocab(2), 0.3, gen)
    changed = noised != labels
    assert not changed[~valid].any()  # padding is never touched
    assert abs(changed[valid].float().mean().item() - 0.3) < 0.03
    assert torch.all((noised >= 0) & (noised < 4))  # always another text of the vocabulary
    # every other vocabulary text is drawn
    assert set(noised[changed].tolist()) == {0, 1, 2, 3}
    assert torch.equal(noise_labels(labels, valid, vocab(2), 0.0, gen), labels)
    one_text = torch.zeros_like(labels)
    assert torch.equal(noise_labels(one_text, valid, vocab(2, texts=(0,)), 1.0, gen), one_text)


def test_box_noise_statistics():
    gen = torch.Generator().manual_seed(4)
    n, scale = 20000, 0.4
    boxes = torch.cat([torch.full((n, 2), 0.5), torch.rand(n, 2, generator=gen) * 0.3 + 0.1], 1)
    noised = noise_boxes(boxes, scale, gen)
    shift = (noised[:, :2] - boxes[:, :2]).abs()
    assert torch.all(shift <= scale * boxes[:, 2:] / 2 + 1e-6)
    ratio = noised[:, 2:] / boxes[:, 2:]
    assert torch.all((ratio >= 1 - scale - 1e-6) & (ratio <= 1 + scale + 1e-6))
    assert abs(ratio.mean().item() - 1.0) < 0.01  # unbiased size noise
    assert (noised[:, :2] - boxes[:, :2]).mean().abs().max() < 0.002  # unbiased centre noise
    assert ratio.std() > 0.2  # and actually noisy (uniform on +-0.4 has std 0.23)
    assert torch.equal(noise_boxes(boxes, 0.0, gen), boxes)
    assert noise_boxes(torch.tensor([[0.99, 0.01, 0.5, 0.5]]), 1.0, gen).min() >= 0


class TinySelfAttentionDecoder(nn.Module):
    """Two self-attention + FFN layers applied with a fixed attention mask."""

    def __init__(self, dim=D):
        super().__init__()
        self.attn = nn.ModuleList(nn.MultiheadAttention(dim, 2, batch_first=True) for _ in range(2))
        self.ffn = nn.ModuleList(nn.Linear(dim, dim) for _ in range(2))

    def forward(self, x, mask):
        for attn, ffn in zip(self.attn, self.ffn):
            x = x + attn(x, x, x, attn_mask=mask, need_weights=False)[0]
            x = x + ffn(x).relu()
        return x


def test_matching_queries_do_not_see_dn_queries():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(5)
    n_match = 6
    model = TinySelfAttentionDecoder().eval()
    targets = make_targets([3, 2], gen)
    emb = torch.randn(T, D, generator=gen)
    dn = build_denoising_queries(
        targets, emb, vocab(2), num_matching_queries=n_match, dn_query_budget=9, generator=gen
    )
    matching = torch.randn(2, n_match, D, generator=gen)
    out = model(torch.cat([dn.content, matching], 1), dn.attn_mask)
    num_dn = dn.meta["num_dn_queries"]  # the sequence is [DN queries | matching queries]
    dn_out, match_out = out[:, :num_dn], out[:, num_dn:]
    assert dn_out.shape == (2, 9, D) and match_out.shape == (2, n_match, D)

    other_dn = torch.randn_like(dn.content) * 10
    out2 = model(torch.cat([other_dn, matching], 1), dn.attn_mask)
    dn_out2, match_out2 = out2[:, :num_dn], out2[:, num_dn:]
    assert torch.allclose(match_out, match_out2, atol=1e-5)  # matching queries are blind to DN
    assert not torch.allclose(dn_out, dn_out2)

    # groups are isolated: changing group 1 leaves group 0's outputs unchanged
    size = dn.meta["group_size"]
    group1_changed = dn.content.clone()
    group1_changed[:, size : 2 * size] += 5.0
    out3 = model(torch.cat([group1_changed, matching], 1), dn.attn_mask)
    assert torch.allclose(out3[:, :size], out[:, :size], atol=1e-5)
    assert not torch.allclose(out3[:, size : 2 * size], out[:, size : 2 * size])

    # without the mask the same change would leak, so the test can fail
    leaked = model(torch.cat([other_dn, matching], 1), None)
    assert not torch.allclose(leaked[:, num_dn:], match_out, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dn_query_budget"):
        build_denoising_queries(
            make_targets([1], torch.Generator()),
            torch.randn(T, D),
            vocab(1),
            num_matching_queries=2,
            dn_query_budget=0,
        )
