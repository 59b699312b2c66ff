"""Experiments repeated over several seeds: the `--seeds` option, tables of mean and per-seed
values, and the spread (used by tools/query_ablation.py and tools/synthetic_data_experiment.py).

A table's rows map a variant to one dict of columns per seed; a missing value is None (a metric an
evaluator could not give)."""
import argparse
import statistics
from typing import Dict, List, Optional

Rows = Dict[str, List[Dict[str, Optional[float]]]]


def seed_list(text: str) -> List[int]:
    """"42,43" -> [42, 43] (comma-separated, so that config overrides can follow on the command line)."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds wants comma-separated integers, e.g. 42,43; got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds {text!r} repeats a seed")
    return seeds


def format_cell(values: List[Optional[float]]) -> str:
    """One seed: "12.5"; several: their mean, then each seed's value, "12.1 (11.5 / 12.7)";
    "-" when a seed lacks the value."""
    if any(v is None for v in values):
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} (" + " / ".join(f"{v:.1f}" for v in values) + ")"


def seeds_table(rows: Rows, first_column: str) -> str:
    """Markdown table, one row per variant (headed `first_column`), one column per metric."""
    columns = list(next(iter(rows.values()))[0])
    lines = [f"| {first_column} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for variant, per_seed in rows.items():
        cells = [format_cell([row[c] for row in per_seed]) for c in columns]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_spread(rows: Rows) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per variant and column: mean, min, max and (max - min) over the seeds (columns with a
    missing value are left out)."""
    spread = {}
    for variant, per_seed in rows.items():
        spread[variant] = {}
        for column in per_seed[0]:
            values = [row[column] for row in per_seed]
            if any(v is None for v in values):
                continue
            spread[variant][column] = {"mean": statistics.mean(values), "min": min(values),
                                       "max": max(values), "range": max(values) - min(values)}
    return spread
