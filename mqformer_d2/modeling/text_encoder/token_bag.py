"""A bag-of-words embedding of a text's tokens, added to the text tower's features.

A text tower trained from scratch starts with every short text in almost the same direction: a
one-word class name reaches the pooled (end-of-text) token only through attention, and at random
initialisation all names share that token and its position. The issue-11 diagnostics measured it
on the tiny tower: the six shape names had pairwise cosine 0.92 on average at initialisation
(0.98 for "triangle" / "star") and still 0.77-0.84 after the main job, so that a cosine classifier
has little room to tell names apart and its gradient gives the queries little reason to. The mean
of a trainable embedding of the words gives distinct words near-orthogonal directions from the
start; texts that share words ("red triangle", "blue triangle") share part of theirs, so any text
remains a prompt.
"""
from torch import Tensor, nn
import torch.nn.functional as F


class TokenBagEmbedding(nn.Module):
    """Unit-norm mean of the embeddings of a text's word tokens: (T, L) ids -> (T, dim).

    Args:
        vocab_size: tokenizer vocabulary size. dim: embedding width.
    Padding (id 0), the start token (position 0) and the end token (the largest id of a row,
    as open_clip's tokenizers assign it) are left out.
    """

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)

    def forward(self, tokens: Tensor) -> Tensor:
        words = tokens != 0
        words[:, 0] = False
        words.scatter_(1, tokens.argmax(-1, keepdim=True), False)
        weights = words.to(self.embedding.weight.dtype)
        summed = (self.embedding(tokens) * weights[..., None]).sum(1)
        return F.normalize(summed / weights.sum(1, keepdim=True).clamp_min(1.0), dim=-1)
