"""Where an input's vocabulary comes from: checking a given one, and the stuff texts of a dataset's
metadata. (The batch's union of vocabularies is `text_batch.TextBatch.from_vocabularies`.)"""
from typing import List, Set


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
