"""Every config key MQ-Former adds is commented and read by code, and every shipped YAML lists only what it changes."""
import ast
import glob
import os

import pytest
import yaml
from detectron2.config import CfgNode, get_cfg
from helpers import ROOT

from mqformer_d2 import add_mqformer_config

PACKAGE = os.path.join(ROOT, "mqformer_d2")
CONFIG_MODULE = os.path.join(PACKAGE, "config.py")
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))


def _leaves(node: CfgNode, prefix=""):
    for key, value in node.items():
        if isinstance(value, CfgNode):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


def _chain(node):
    """`a.b.c` -> ["a", "b", "c"]; None unless the chain starts at a plain name."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return [node.id] + names[::-1] if isinstance(node, ast.Name) else None


def _resolve(names, aliases):
    """The config path an attribute chain denotes: what follows its last `cfg`, or an alias's path
    followed by the rest of the chain; None for chains that are not config reads."""
    if names is None:
        return None
    if "cfg" in names:
        rest = names[len(names) - names[::-1].index("cfg"):]
        return ".".join(rest) or None
    if names[0] in aliases:
        return ".".join([aliases[names[0]]] + names[1:])
    return None


def _own_nodes(scope):
    """The nodes of `scope` outside the functions and classes defined in it, in source order."""
    stack = list(reversed(list(ast.iter_child_nodes(scope))))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _collect_reads(scope, aliases, reads) -> None:
    """Add the config paths `scope` reads to `reads`; `aliases` maps local names to config paths."""
    aliases = dict(aliases)
    if not isinstance(scope, (ast.Module, ast.ClassDef)):  # parameters hide outer aliases
        for argument in ast.walk(scope.args):
            if isinstance(argument, ast.arg):
                aliases.pop(argument.arg, None)
    nested = []
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            path = _resolve(_chain(node.value), aliases)
            if path:
                aliases[node.targets[0].id] = path
            else:
                aliases.pop(node.targets[0].id, None)
        elif isinstance(node, ast.Attribute):
            path = _resolve(_chain(node), aliases)
            if path:
                reads.add(path)
        elif isinstance(node, _SCOPES):
            nested.append(node)
    for node in nested:
        _collect_reads(node, aliases, reads)


def _config_reads(source: str) -> set:
    """Full dotted paths of the config attributes `source` reads: attribute chains after a name or
    attribute `cfg` (`cfg.MODEL.MQFORMER.HIDDEN_DIM`, `self.cfg.DATASETS.TEST`), directly or through
    a local alias of such a chain (`dec = cfg.MODEL.MQFORMER.DECODER` then `dec.DROPOUT` reads
    MODEL.MQFORMER.DECODER.DROPOUT). Aliases hold within the function that assigns them (and the
    functions nested in it)."""
    reads = set()
    _collect_reads(ast.parse(source), {}, reads)
    return reads


def _package_config_reads() -> set:
    """`_config_reads` of every module of the package except config.py, which adds the keys."""
    reads = set()
    for path in glob.glob(os.path.join(PACKAGE, "**", "*.py"), recursive=True):
        if path != CONFIG_MODULE:
            with open(path) as f:
                reads |= _config_reads(f.read())
    return reads


def _unread(keys, reads) -> list:
    """The keys read neither at their full path nor through a method of their value (`KEY.copy()`)."""
    return [key for key in keys if key not in reads and not any(r.startswith(key + ".") for r in reads)]


def _added_keys():
    """Every key add_mqformer_config adds on top of detectron2's defaults (MODEL.MQFORMER, data,
    solver and evaluation keys)."""
    return sorted(set(_leaves(add_mqformer_config(get_cfg()))) - set(_leaves(get_cfg())))


def test_every_added_key_is_read_by_code_at_its_full_path():
    keys = _added_keys()
    assert "MODEL.MQFORMER.HIDDEN_DIM" in keys and "INPUT.IMAGE_SIZE" in keys
    unread = _unread(keys, _package_config_reads())
    assert not unread, f"config keys never read by mqformer_d2: {unread}"


def test_a_key_read_under_another_node_does_not_count():
    """The check above fails when only a same-named key of another node is read, directly or
    through an alias, and follows aliases of aliases and nested functions."""
    keys = ["MODEL.MQFORMER.PIXEL_DECODER.DROPOUT", "MODEL.MQFORMER.DECODER.DROPOUT"]
    reads_decoder_only = _config_reads(
        "def from_config(cfg):\n"
        "    dec = cfg.MODEL.MQFORMER.DECODER\n"
        "    pd = cfg.MODEL.MQFORMER.PIXEL_DECODER\n"
        "    return dec.DROPOUT, pd.NUM_LAYERS\n"
    )
    assert _unread(keys, reads_decoder_only) == ["MODEL.MQFORMER.PIXEL_DECODER.DROPOUT"]
    assert _unread(keys, _config_reads("def f(cfg):\n    return cfg.MODEL.MQFORMER.DECODER.DROPOUT\n")) == keys[:1]
    nested = _config_reads(
        "class A:\n"
        "    def f(self):\n"
        "        mq = self.cfg.MODEL.MQFORMER\n"
        "        pd = mq.PIXEL_DECODER\n"
        "        def h(dec):\n"
        "            return dec.DROPOUT\n"
        "        return lambda: pd.DROPOUT\n"
        "    def g(self, pd):\n"
        "        return pd.DROPOUT\n"
    )
    assert "MODEL.MQFORMER.PIXEL_DECODER.DROPOUT" in nested and "DROPOUT" not in nested
    assert _unread(keys, nested) == ["MODEL.MQFORMER.DECODER.DROPOUT"]


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
