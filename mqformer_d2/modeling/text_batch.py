"""The texts of one batch as every stage after the encoder sees them: the union vocabulary, its
embeddings, which texts belong to which image, and where each image's own texts sit in the union."""
from typing import List, NamedTuple

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

    def vocabulary(self, index: int) -> List[str]:
        """Image `index`'s own texts (T_b), in its vocabulary's order."""
        return [self.texts[i] for i in self.local_to_union[index].tolist()]
