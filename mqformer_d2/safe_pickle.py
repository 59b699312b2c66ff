"""Reading pickles without running code: only plain data and numpy arrays are rebuilt.

`pickle.load` calls whatever the file names (any importable function), so a crafted weights or
annotation file runs code as soon as it is read. `load_pickle_safely` refuses every global except
the few that numpy arrays and dtypes are rebuilt from; containers, numbers and strings need none.
That covers detectron2 / model-zoo `.pkl` weights (`{"model": {name: ndarray}, "__author__": ...,
"matching_heuristics": True}`) and the RefCOCO `refs(*).p` files (lists and dicts of strings and
numbers, written by Python 2).
"""
import io
import pickle
from typing import Any, BinaryIO

# (module, name) pairs a pickle may name. numpy moved `core` to `_core` in 2.0: both spellings.
# Arrays are rebuilt by `_reconstruct` (protocols 0-4) or `_frombuffer` (protocol 5), scalars by
# `scalar`; `_codecs.encode` rebuilds bytes in protocol-2 pickles written by Python 3 (it only
# re-encodes text).
_ALLOWED_GLOBALS = frozenset(
    [(f"{package}.multiarray", name) for package in ("numpy.core", "numpy._core") for name in ("_reconstruct", "scalar")]
    + [(f"{package}.numeric", "_frombuffer") for package in ("numpy.core", "numpy._core")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
       ("collections", "OrderedDict")]
)


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global that plain data never needs (it would run code)."""


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` only returns the globals in `_ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"it names {module}.{name}, which plain data and numpy arrays never need; "
                "refusing to run it"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise UnsafePickleError(f"it refers to an external object {pid!r}")


def load_pickle_safely(file: BinaryIO, encoding: str = "ASCII") -> Any:
    """`pickle.load(file, encoding=encoding)` restricted to plain data and numpy arrays.

    Raises UnsafePickleError when the pickle names any other global. Python 2 pickles need
    `encoding="latin1"` for non-ASCII byte strings (and numpy arrays written by Python 2).
    """
    return _RestrictedUnpickler(file, encoding=encoding).load()


def loads_pickle_safely(data: bytes, encoding: str = "ASCII") -> Any:
    """`load_pickle_safely` on bytes."""
    return load_pickle_safely(io.BytesIO(data), encoding=encoding)
