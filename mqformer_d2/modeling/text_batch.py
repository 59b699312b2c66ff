"""The texts of one batch as every stage after the encoder sees them: the union vocabulary, its
embeddings, which texts belong to which image, and where each image's own texts sit in the union.
The one place that merges the images' vocabularies (`union_vocabulary`) and builds a `TextBatch`
(`TextBatch.from_vocabularies`)."""
from typing import Callable, List, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor


class TextBatch(NamedTuple):
    """B images whose vocabularies are merged into T union texts (first-seen order).

    texts: the T distinct texts.
    embeddings: (T, C) their text-encoder embeddings, projected to the decoder width C.
    valid: (B, T) bool, text t belongs to image b's vocabulary (the class logits of other columns
        are ignored by the query selector and the losses, and masked at inference).
    local_to_union: B int64 tensors (T_b,), the union index of each text of image b's vocabulary,
        in the vocabulary's order.
    """

    texts: List[str]
    embeddings: Tensor
    valid: Tensor
    local_to_union: List[Tensor]

    @classmethod
    def from_vocabularies(cls, vocabularies: Sequence[Sequence[str]], embed: Callable[[List[str]], Tensor],
                          device=None) -> "TextBatch":
        """The batch of B images' `vocabularies`; `embed` maps the T union texts to (T, C) embeddings
        (the text encoder), called once for the whole batch."""
        texts, valid, local_to_union = union_vocabulary(vocabularies, device=device)
        return cls(texts, embed(texts), valid, local_to_union)

    def vocabulary(self, index: int) -> List[str]:
        """Image `index`'s own texts (T_b), in its vocabulary's order."""
        return [self.texts[i] for i in self.local_to_union[index].tolist()]


def union_vocabulary(vocabularies: Sequence[Sequence[str]], device=None) -> Tuple[List[str], Tensor, List[Tensor]]:
    """Merge per-image vocabularies, keeping first-seen order.

    Args:
        vocabularies: B lists of texts (an image's positives and negatives).

    Returns:
        texts: the T distinct texts.
        text_valid: (B, T) bool, text t belongs to image b's vocabulary.
        local_to_union: B int64 tensors (T_b,), union index of each of the image's texts.
    """
    position = {}
    for vocabulary in vocabularies:
        for text in vocabulary:
            position.setdefault(text, len(position))
    texts = list(position)
    text_valid = torch.zeros(len(vocabularies), len(texts), dtype=torch.bool, device=device)
    local_to_union = []
    for index, vocabulary in enumerate(vocabularies):
        ids = torch.tensor([position[t] for t in vocabulary], dtype=torch.int64, device=device)
        text_valid[index, ids] = True
        local_to_union.append(ids)
    return texts, text_valid, local_to_union
