"""Text handling of the unified format: choosing a target's text, flipping sentences, vocabularies."""
import random
import re
from typing import List, Optional, Sequence

# Words swapped when an image is flipped horizontally. Whole words only, case kept.
_MIRRORED_WORDS = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost"}
_MIRRORED_PATTERN = re.compile(r"\b(" + "|".join(_MIRRORED_WORDS) + r")\b", re.IGNORECASE)


def mirror_sentence(sentence: str) -> str:
    """'the cup left of the plate' -> 'the cup right of the plate' (for horizontally flipped images)."""

    def swap(match):
        word = match.group(0)
        mirrored = _MIRRORED_WORDS[word.lower()]
        return mirrored.capitalize() if word[0].isupper() else mirrored

    return _MIRRORED_PATTERN.sub(swap, sentence)


def choose_text(annotation: dict, text_prompts: Sequence[str], rng: Optional[random.Random],
                dataset_name: str) -> str:
    """The text of one unified annotation (see docs/data_format.md).

    Free-form `texts` win over `category_id`; with several texts (e.g. synthetic captions) one is
    drawn with `rng`, or the first is taken when `rng` is None (evaluation: deterministic).
    """
    texts = annotation.get("texts")
    if texts:
        return rng.choice(texts) if rng is not None else texts[0]
    category_id = annotation.get("category_id")
    if category_id is None:
        raise KeyError(f"dataset '{dataset_name}': an annotation has neither 'texts' nor 'category_id'")
    if not 0 <= category_id < len(text_prompts):
        raise KeyError(
            f"dataset '{dataset_name}': category_id {category_id} is outside metadata.text_prompts "
            f"(length {len(text_prompts)})"
        )
    return text_prompts[category_id]


def build_vocabulary(positives: Sequence[str], candidates: Sequence[str], num_negatives: int,
                     rng: random.Random) -> List[str]:
    """A training image's vocabulary: its distinct positive texts in order of appearance, then up
    to `num_negatives` other candidate texts sampled with `rng`. Negatives teach the classifier
    what the targets are not. (In evaluation the vocabulary is the dataset's full `text_prompts`.)
    """
    vocabulary = list(dict.fromkeys(positives))
    taken = set(vocabulary)
    others = [text for text in dict.fromkeys(candidates) if text not in taken]
    return vocabulary + rng.sample(others, min(max(num_negatives, 0), len(others)))
