"""The exemplar experiment's table: mask AP per pooling and K (mean over the stage's seeds, then
each seed), text-prompted AP on the same classes, and which pooling differences at K = 5 exceed
the seed spread."""
from itertools import combinations
from typing import Dict, List, Sequence

VAL = "mqformer_shapes_val_instance"
HELD_OUT = "mqformer_shapes_seginw_ColorShapes_val"


def _cell(values: List[float]) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.1f}" + (f" ({' / '.join(f'{v:.1f}' for v in values)})" if len(values) > 1 else "")


def _values(runs: List[Dict], pooling: str, dataset: str, key: str) -> List[float]:
    return [r["exemplar_ap"][dataset][key] for r in runs if r["pooling"] == pooling and dataset in r["exemplar_ap"]]


def spread(values: List[float]) -> float:
    """max - min over the seeds (0 for one seed)."""
    return max(values) - min(values) if values else 0.0


def exemplar_table(text_ap: Dict[str, float], runs: List[Dict], k_values: Sequence[int] = (1, 3, 5)) -> str:
    """Markdown: one row per pooling (cells "mean (seed a / seed b)"), the text row, then each pair
    of poolings at the largest K with its difference and whether it exceeds both poolings' seed
    spreads (max - min over the seeds)."""
    top = f"K={max(k_values)}"
    poolings = list(dict.fromkeys(r["pooling"] for r in runs))
    seeds = list(dict.fromkeys(r["seed"] for r in runs))
    lines = [f"Mask AP, validation instances (6 shapes); exemplars from the training split; cells: mean over "
             f"exemplar-stage seeds ({' / '.join(map(str, seeds))}), each the mean of the exemplar sets.", "",
             "| prompt | " + " | ".join(f"K = {k}" for k in k_values) + f" | held-out colour-shapes, K = {max(k_values)} |",
             "|---|" + "---|" * (len(k_values) + 1)]
    for pooling in poolings:
        cells = [_cell(_values(runs, pooling, VAL, f"K={k}")) for k in k_values]
        held_out = _values(runs, pooling, HELD_OUT, top)
        lines.append(f"| exemplars, {pooling} | " + " | ".join(cells) + f" | {_cell(held_out) if held_out else '-'} |")
    text_held_out = f"{text_ap[HELD_OUT]:.1f}" if HELD_OUT in text_ap else "-"
    lines.append(f"| text (class names) | {text_ap.get(VAL, float('nan')):.1f} |" + " |" * (len(k_values) - 1)
                 + f" {text_held_out} |")
    lines += ["", f"| K = {max(k_values)}, by pooling | - text | - K = {min(k_values)} |", "|---|---|---|"]
    for pooling in poolings:
        best, first = _values(runs, pooling, VAL, top), _values(runs, pooling, VAL, f"K={min(k_values)}")
        mean = sum(best) / len(best)
        lines.append(f"| {pooling} | {mean - text_ap.get(VAL, float('nan')):+.1f} | {mean - sum(first) / len(first):+.1f} |")
    lines += ["", f"| K = {max(k_values)} | difference | seed spreads | exceeds the spread |", "|---|---|---|---|"]
    for a, b in combinations(poolings, 2):
        va, vb = _values(runs, a, VAL, top), _values(runs, b, VAL, top)
        difference = sum(va) / len(va) - sum(vb) / len(vb)
        exceeds = len(seeds) > 1 and abs(difference) > max(spread(va), spread(vb))
        lines.append(f"| {a} - {b} | {difference:+.1f} | {spread(va):.1f} / {spread(vb):.1f} | "
                     f"{'yes' if exceeds else 'no'} |")
    return "\n".join(lines)
