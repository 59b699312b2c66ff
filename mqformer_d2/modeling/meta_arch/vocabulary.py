"""The batch's text vocabulary: per-image text lists -> one union list the model embeds once."""
from typing import List, Sequence, Set, Tuple

import torch
from torch import Tensor


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


def check_vocabulary(vocabulary, where: str) -> List[str]:
    """A list of non-empty strings, else a ValueError that says where it came from."""
    if isinstance(vocabulary, str) or not all(isinstance(t, str) and t for t in vocabulary):
        raise ValueError(f"{where} must be a list of non-empty strings, got {vocabulary!r:.200}")
    return list(vocabulary)


def stuff_prompts(metadata) -> Set[str]:
    """The stuff texts of a dataset with panoptic-style metadata: the `text_prompts` whose index (the
    contiguous id) is not a value of `thing_dataset_id_to_contiguous_id`. Empty when the metadata has
    no stuff id map. (Class-name lists cannot decide this: detectron2's standard COCO panoptic
    metadata lists all 133 classes as `thing_classes`.)"""
    if metadata is None:
        return set()
    prompts = metadata.get("text_prompts", None)
    thing_ids = metadata.get("thing_dataset_id_to_contiguous_id", None)
    if not prompts or thing_ids is None or metadata.get("stuff_dataset_id_to_contiguous_id", None) is None:
        return set()
    things = set(thing_ids.values())
    return {text for index, text in enumerate(prompts) if index not in things}
