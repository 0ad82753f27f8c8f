"""ECI's answers kept lean: the node holds a description of every group it runs.

The SDK's models set every field of their class in ``__init__``, so each instance's
``__dict__`` holds all of them, most None (a container-group description has some 50 fields
and a dozen nested models), and every string of the answer is a fresh copy: the same image,
status, tag key and event reason once per group. :func:`lean` rebuilds a model as an instance
of a subclass whose class attributes are the model's fields, all None, so an instance keeps
only the fields the answer has, and interns its strings. Empty lists and nested models with
nothing in them (``"Ports": []``, ``"PreviousState": {}``, a ``DnsConfig`` of empty lists) are
left out too: they read None, as when ECI leaves a field out of its answer, which every reader
must take anyway. The result is still an instance of the SDK's class and reads the same field
by field (an empty list or model as None); its ``to_map()`` is the same but for the empty
models (the SDK maps a list left out as an empty one): ``tests/unit/test_eci_lean.py``.
Measured on an emulator group with its events copied: 5.9 KiB lean with the empties, 4.5 KiB
without (8.7 KiB as the SDK builds it, its five events kept).
"""

from __future__ import annotations

from collections.abc import Collection
from sys import intern
from typing import Any

from Tea.model import TeaModel

_lean: dict[type, type] = {}


def _lean_class(klass: type) -> type:
    lean = _lean.get(klass)
    if lean is None:
        fields = vars(klass()).keys()  # the SDK's models take no required arguments
        lean = _lean[klass] = type(klass.__name__, (klass,), {
            **dict.fromkeys(fields), "__module__": klass.__module__,
            "__qualname__": klass.__qualname__})
        _lean[lean] = lean  # a lean model rebuilt again keeps its class
    return lean


def lean(value: Any, omit: Collection[str] = ()) -> Any:
    """``value`` (an SDK model, or a list/dict/str inside one) rebuilt lean; see the module
    docstring. Fields named in ``omit`` (at any depth) are left out: they read None. Other
    values are returned as they are."""
    kind = type(value)
    if kind is str:
        return intern(value)
    if kind is list:
        return [lean(v, omit) for v in value] if value else value
    if kind is dict:
        return {intern(k) if type(k) is str else k: lean(v, omit) for k, v in value.items()}
    if isinstance(value, TeaModel):
        obj: Any = object.__new__(_lean_class(kind))
        state = obj.__dict__
        # The scalars (most fields) inline, not through a call each: every group of every
        # listing passes here, a dozen models of some 50 fields each.
        for name, field in value.__dict__.items():
            if field is None or name in omit:
                continue
            t = type(field)
            if t is str:
                state[name] = intern(field)
            elif t is int or t is float or t is bool:
                state[name] = field
            elif t is list:
                if field:
                    state[name] = [lean(v, omit) for v in field]
            else:
                field = lean(field, omit)
                if not (isinstance(field, TeaModel) and not field.__dict__):
                    state[name] = field  # (a model with nothing in it: None, as [] is)
        return obj
    return value
