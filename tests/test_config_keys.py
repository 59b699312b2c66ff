"""Every config key MQ-Former adds is commented and read by code, and every shipped YAML lists only what it changes."""
import glob
import os

import pytest
import yaml
from detectron2.config import CfgNode, get_cfg

from mqformer_d2 import add_mqformer_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "mqformer_d2")
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))


def _leaves(node: CfgNode, prefix=""):
    for key, value in node.items():
        if isinstance(value, CfgNode):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _package_sources_except_config() -> str:
    texts = []
    for path in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True):
        if os.path.basename(path) != "config.py":
            with open(path) as f:
                texts.append(f.read())
    return "\n".join(texts)


def _added_keys():
    """Every key add_mqformer_config adds on top of detectron2's defaults (MODEL.MQFORMER, data,
    solver and evaluation keys)."""
    return sorted(set(_leaves(add_mqformer_config(get_cfg()))) - set(_leaves(get_cfg())))


def test_every_added_key_is_read_by_code():
    keys = _added_keys()
    assert "MODEL.MQFORMER.HIDDEN_DIM" in keys and "INPUT.IMAGE_SIZE" in keys
    sources = _package_sources_except_config()
    unread = []
    for key in keys:
        parent, _, leaf = key.rpartition(".")
        # Read as `<node>.LEAF` where the node is reached through its own name.
        node_name = parent.rpartition(".")[2]
        if f".{leaf}" not in sources or node_name not in sources:
            unread.append(key)
    assert not unread, f"config keys never read by mqformer_d2: {unread}"


def test_every_added_key_has_a_comment():
    uncommented = []
    for path in glob.glob(os.path.join(PACKAGE, "**", "config.py"), recursive=True):
        with open(path) as f:
            lines = f.read().splitlines()
        for index, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith(("mq.", "cfg.")) and " = " in stripped and "CN()" not in stripped:
                # A comment right above, or the previous line is a key of the same commented group.
                above = lines[index - 1].strip()
                if not above.startswith("#") and not (above.startswith(("mq.", "cfg.")) and " = " in above):
                    uncommented.append(f"{os.path.relpath(path, ROOT)}: {stripped}")
    assert not uncommented, f"keys without a comment: {uncommented}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_yaml_merges_and_lists_only_changes(path):
    with open(path) as f:
        own = yaml.safe_load(f)
    cfg = add_mqformer_config(get_cfg())
    cfg.merge_from_file(path)
    base = add_mqformer_config(get_cfg())
    if "_BASE_" in own:
        base.merge_from_file(os.path.join(os.path.dirname(path), own["_BASE_"]))
    unchanged = []

    def walk(node, base_node, prefix):
        for key, value in node.items():
            if key == "_BASE_" or key == "VERSION":
                continue
            if isinstance(value, dict):
                walk(value, base_node[key], f"{prefix}{key}.")
            elif "_BASE_" in own and _normalise(base_node[key]) == _normalise(value):
                unchanged.append(prefix + key)

    walk(own, base, "")
    assert not unchanged, f"{path} repeats inherited values: {unchanged}"


def _normalise(value):
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, str) and value.startswith("("):
        return tuple(yaml.safe_load("[" + value.strip("()") + "]"))
    return value
