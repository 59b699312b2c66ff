"""What a weights file did to the model: per component, tensors loaded / left as built, and the
file's tensors that were not used, grouped by reason and by name pattern."""
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence

# Components of MQ-Former in report order, by state-dict prefix (the first match wins).
COMPONENTS = ("backbone", "pixel decoder", "decoder", "text encoder", "heads")
_PREFIXES = (("decoder.heads.", "heads"), ("backbone.", "backbone"), ("pixel_decoder.", "pixel decoder"),
             ("decoder.", "decoder"), ("text_encoder.", "text encoder"))


def component_of(name: str) -> str:
    """The MQ-Former component a state-dict name belongs to ("other" for none of COMPONENTS)."""
    for prefix, component in _PREFIXES:
        if name.startswith(prefix):
            return component
    return "other"


def group_names(names: Iterable[str], limit: int = 12) -> List[str]:
    """Names with their numbers replaced by `*`, each pattern once with its count, e.g.
    "sem_seg_head.predictor.bbox_embed.*.layers.*.weight (x27)"; at most `limit` patterns."""
    counts = Counter(re.sub(r"(?<=\.)\d+(?=\.|$)", "*", name) for name in names)
    lines = [f"{pattern} (x{count})" if count > 1 else pattern for pattern, count in sorted(counts.items())]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more patterns"]
    return lines


@dataclass
class LoadReport:
    """The result of loading one weights file into a model.

    path: the file. file_format: what it was recognised as (see `formats.detect_format`).
    loaded / initialised: component -> model tensor names taken from the file / left as built.
    skipped: reason -> names *in the file* that were not loaded.
    sources: model tensor name -> the file's name of the tensor loaded into it.
    """

    path: str
    file_format: str
    loaded: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    initialised: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    skipped: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    sources: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, path: str, file_format: str, model_keys: Sequence[str], sources: Dict[str, str],
              skipped: Dict[str, List[str]]) -> "LoadReport":
        """Sort the model's tensors into loaded (the keys of `sources`) / initialised per component."""
        report = cls(path, file_format, sources=dict(sources))
        loaded_keys = set(sources)
        for name in model_keys:
            target = report.loaded if name in loaded_keys else report.initialised
            target[component_of(name)].append(name)
        for reason, names in skipped.items():
            if names:
                report.skipped[reason].extend(names)
        return report

    def counts(self, component: str):
        """(loaded, total) model tensors of `component`."""
        loaded = len(self.loaded.get(component, ()))
        return loaded, loaded + len(self.initialised.get(component, ()))

    def share(self, component: str) -> float:
        """Fraction of the component's tensors loaded from the file (1.0 for an empty component)."""
        loaded, total = self.counts(component)
        return loaded / total if total else 1.0

    def num_skipped(self) -> int:
        return sum(len(names) for names in self.skipped.values())

    def lines(self) -> List[str]:
        """The report as text lines (logged by the checkpointer, printed by tools/convert_weights.py)."""
        out = [f"Weights from {self.path} ({self.file_format}):"]
        components = list(COMPONENTS) + (["other"] if self.counts("other")[1] else [])
        for component in components:
            loaded, total = self.counts(component)
            out.append(f"  {component:<13} {loaded:>4} of {total:>4} tensors loaded ({self.share(component):6.1%}), "
                       f"{total - loaded} left as built")
        for component in components:
            if self.initialised.get(component) and self.loaded.get(component):
                out.append(f"  left as built in {component}: " + "; ".join(group_names(self.initialised[component], 6)))
        out.append(f"  skipped from the file: {self.num_skipped()} tensors")
        for reason, names in self.skipped.items():
            out.append(f"    {len(names)} {reason}:")
            out.extend(f"      {line}" for line in group_names(names))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())
