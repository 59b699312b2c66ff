"""One registration hook for every entry point: modules that register a user's datasets (or any
other detectron2 component) are imported before the entry point looks anything up.

Name them with ``--register-module MODULE`` (train_net.py, demo/demo.py, every tool; repeatable) or
in the environment variable ``MQFORMER_REGISTER_MODULES`` (comma-separated), which also reaches
the worker processes that ``--num-gpus`` spawns and the runs that tools start. A module is a
dotted name on ``sys.path`` (``my_pkg.datasets``) or the path of a ``.py`` file
(``configs/custom/register_parts.py``). Each is imported once per process.
"""
import argparse
import importlib
import importlib.util
import logging
import os
import sys
from types import ModuleType
from typing import Iterable, List, Optional

logger = logging.getLogger(__name__)

REGISTER_MODULES_ENV = "MQFORMER_REGISTER_MODULES"
_MODULE_HELP = ("a module that registers datasets, imported first: a dotted name (my_pkg.datasets) or a .py "
                f"file; repeatable; also read from ${REGISTER_MODULES_ENV} (comma-separated)")


def add_register_module_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--register-module MODULE`` (repeatable) to ``parser``."""
    parser.add_argument("--register-module", action="append", default=[], metavar="MODULE", help=_MODULE_HELP)
    return parser


def modules_in_environment() -> List[str]:
    """The entries of ``$MQFORMER_REGISTER_MODULES`` (blank entries ignored)."""
    return [m.strip() for m in os.environ.get(REGISTER_MODULES_ENV, "").split(",") if m.strip()]


def _import_file(path: str) -> ModuleType:
    """Import the .py file ``path`` once, as a module named after its absolute path."""
    path = os.path.abspath(path)
    name = "mqformer_registration_" + "".join(c if c.isalnum() else "_" for c in path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def import_registration_module(entry: str) -> ModuleType:
    """Import one module named by ``entry`` (dotted name or .py path); an ImportError naming the
    entry and the two ways to name a module when it cannot be found."""
    if entry.endswith(".py") or os.sep in entry:
        if not os.path.isfile(entry):
            raise ImportError(f"registration module {entry!r}: no such file")
        return _import_file(entry)
    try:
        return importlib.import_module(entry)
    except ModuleNotFoundError as error:
        if error.name and entry.startswith(error.name):  # the module itself, not one it imports
            raise ImportError(f"registration module {entry!r} is not importable ({error}); give a dotted "
                              "name on sys.path (e.g. run from the folder holding the package, or set "
                              "PYTHONPATH) or the path of a .py file") from error
        raise


def import_registration_modules(modules: Optional[Iterable[str]] = None) -> List[ModuleType]:
    """Import ``modules`` and those of ``$MQFORMER_REGISTER_MODULES``; afterwards the variable
    names them all, so that processes started from here import them too. Returns the modules."""
    entries = list(dict.fromkeys([*modules_in_environment(), *(modules or [])]))
    if not entries:
        return []
    imported = [import_registration_module(entry) for entry in entries]
    # Absolute paths: a spawned process may start in another folder.
    entries = list(dict.fromkeys(os.path.abspath(e) if e.endswith(".py") else e for e in entries))
    os.environ[REGISTER_MODULES_ENV] = ",".join(entries)
    logger.info("imported registration module(s): %s", ", ".join(entries))
    return imported
