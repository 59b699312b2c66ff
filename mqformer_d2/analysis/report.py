"""The diagnosis as a markdown table and a JSON file, in a new folder per call."""
import json
import logging
import os
import time
from typing import Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

REPORT_NAME = "thing_naming"


def source_label(source: str, grid: int, mask_size: int) -> Tuple[str, str]:
    """(stage, description) of a probe feature source of `features.collect_target_features`."""
    roi = f"RoIAlign {grid}x{grid} under the box"
    if source == "gt_mask":
        return "bound (no model)", f"ground-truth mask cropped to its box, {mask_size}x{mask_size}"
    if source.startswith("backbone."):
        level = source.split(".")[1]
        return ("backbone", f"{level}, averaged under the true mask (previous probe)") if source.endswith(
            ".mask_avg") else ("backbone", f"{level}, {roi}")
    if source.startswith("encoder.s"):
        return "encoder", f"memory at stride {source[len('encoder.s'):]}, {roi}"
    if source == "mask_features":
        return "encoder", f"stride-4 mask features, {roi}"
    if source == "selected_query":
        return "selected queries", "content of the proposal matched to the target"
    if source.startswith("decoder.layer"):
        return "decoder", f"layer {source[len('decoder.layer'):]} output of the final-layer matched query"
    if source == "class_head.query":
        return "class head", "matched query as compared with the texts (unit vector)"
    return "", source


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f}"


def _probe_cells(result: Optional[Dict]) -> List[str]:
    return ["-", "-"] if result is None else [_percent(result["fit"]), _percent(result["eval"])]


def probe_table(result: Dict) -> str:
    """Markdown: one row per feature source (pipeline order) and the class head's own naming;
    fit (probe dataset) and validation accuracy (%) for the trained and the random-init model."""
    settings = result["settings"]
    trained, baseline = result["probes"]["trained"], result["probes"].get("random_init", {})
    lines = ["| stage | feature source | dim | trained fit | trained val | random-init fit | random-init val |",
             "|---|---|---|---|---|---|---|"]
    for source, probe in trained.items():
        stage, description = source_label(source, settings["grid"], settings["mask_size"])
        random_cells = ["(same)", "(same)"] if source == "gt_mask" else _probe_cells(baseline.get(source))
        cells = [stage, description, str(probe["dim"]), *_probe_cells(probe), *random_cells]
        lines.append("| " + " | ".join(cells) + " |")
    heads = result["class_head"]
    for key, description in (("thing_names", "its top thing name for the matched query"),
                             ("all_texts", "its top text for the matched query (= matched class ok)")):
        cells = [_probe_cells(heads[name][key]) if name in heads else ["-", "-"] for name in ("trained", "random_init")]
        lines.append("| text classifier | " + description + " | - | " + " | ".join(cells[0] + cells[1]) + " |")
    return "\n".join(lines)


def side_table(result: Dict) -> str:
    """Markdown: text side (class-name embeddings, logit scale, bias) and the shares of found /
    named things, trained against random init."""
    models = [m for m in ("trained", "random_init") if m in result["shares"]]
    rows = [("mean pairwise cosine of the thing-name embeddings", "text_side", "mean_cosine", "{:.3f}"),
            ("largest pairwise cosine of two thing names", "text_side", "max_cosine", "{:.3f}"),
            ("logit scale (used)", "text_side", "logit_scale", "{:.2f}"),
            ("logit bias", "text_side", "logit_bias", "{:.2f}"),
            ("found: some query's mask IoU >= 0.5 (%)", "shares", "localised", "{:.1f}"),
            ("matched query's mask IoU >= 0.5 (%)", "shares", "matched_mask_ok", "{:.1f}"),
            ("matched query's top text is right (%)", "shares", "matched_class_ok", "{:.1f}"),
            ("both (%)", "shares", "matched_both_ok", "{:.1f}")]
    lines = ["| | " + " | ".join(m.replace("_", "-") for m in models) + " |", "|---|" + "---|" * len(models)]
    for label, part, key, form in rows:
        values = [result[part].get(m, {}).get(key) for m in models]
        lines.append(f"| {label} | " + " | ".join("-" if v is None else form.format(v) for v in values) + " |")
    return "\n".join(lines)


def markdown_report(result: Dict) -> str:
    """The whole report: header, probe table (with probes), chance levels, side table."""
    settings = result["settings"]
    parts = [f"# Where thing naming is lost: {result['run_dir']}",
             f"Validation: {result['things']} thing targets of {settings['dataset']} "
             f"({result['images']['eval']} images)."]
    if result["probes"]["trained"]:
        parts += [f"Linear probes fitted on {result['fit_things']} thing targets of {settings['probe_dataset']} "
                  f"({result['images']['fit']} images), L2 {settings['l2']}; accuracy in %. Chance: "
                  f"{_percent(result['chance']['uniform'])} (uniform), {_percent(result['chance']['majority'])} "
                  "(the fit set's most common class).", probe_table(result)]
    parts.append(side_table(result))
    return "\n\n".join(parts) + "\n"


def new_report_folder(parent: str) -> str:
    """Create and return parent/thing_naming_<time>[_<n>], never an existing folder."""
    stem = os.path.join(parent, f"{REPORT_NAME}_{time.strftime('%Y%m%d_%H%M%S')}")
    folder, number = stem, 1
    while True:
        try:
            os.makedirs(folder)
            return folder
        except FileExistsError:
            number += 1
            folder = f"{stem}_{number}"


def write_report(result: Dict, parent: str) -> Dict[str, str]:
    """Write thing_naming.md and thing_naming.json into a new folder under `parent`; their paths."""
    folder = new_report_folder(parent)
    paths = {"markdown": os.path.join(folder, f"{REPORT_NAME}.md"), "json": os.path.join(folder, f"{REPORT_NAME}.json")}
    with open(paths["markdown"], "w") as handle:
        handle.write(markdown_report(result))
    with open(paths["json"], "w") as handle:
        json.dump(result, handle, indent=2)
    logger.info("thing naming report written to %s", folder)
    return paths
