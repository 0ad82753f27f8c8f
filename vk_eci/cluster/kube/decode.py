"""API answers into ``kubernetes_asyncio`` models, fast: the same objects the client makes.

The client's own ``ApiClient.deserialize`` parses each type name with a regular expression,
calls every model's validating constructor (one property setter per field) and reads every
timestamp with ``dateutil``: profiled on the node at 200 pods it was over a quarter of the
node's CPU (every watch event of every pod is a whole ``V1Pod``). Here each model class's
field table is computed once, instances are filled in directly, and timestamps go through
``datetime.fromisoformat`` (RFC 3339 as the API server writes it), with ``dateutil`` only for
anything else. The result is equal (``==``) to the client's: ``tests/unit/test_decode.py``.

What is skipped is the client-side validation of required fields, which only guards objects
we build ourselves; answers of the API server are valid by construction.

Memory (the informer keeps every pod of the node): each model is an instance of a subclass
whose class attributes are the model's fields, all None, so an instance's ``__dict__`` holds
only the fields the answer has (a ``V1PodSpec`` has some 40, a pod sets a handful); string
values that recur from pod to pod (images, policies, label and annotation keys) are interned,
one copy each. Measured on a bench pod: 15.2 KiB decoded before, 8.1 KiB after. The instances
are still of the client's model classes (``isinstance``, ``==``, ``to_dict`` as before).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from sys import intern
from typing import Any

from dateutil.parser import parse as parse_datetime  # type: ignore[import-untyped]
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

Convert = Callable[[Any], Any]
_LIST = re.compile(r"list\[(.*)\]")
_DICT = re.compile(r"dict\(([^,]*), (.*)\)")
_converters: dict[str, Convert] = {}
_PRIMITIVES: dict[str, type] = {"str": str, "int": int, "long": int, "float": float,
                                "bool": bool}


def decode(data: Any, kind: str) -> Any:
    """``data`` (parsed JSON) as the client's type ``kind`` (``"V1Pod"``,
    ``"list[V1Container]"``, ``"dict(str, str)"``, ``"datetime"``...)."""
    return converter(kind)(data)


def converter(kind: str) -> Convert:
    conv = _converters.get(kind)
    if conv is None:
        conv = _converters[kind] = _make(kind)
    return conv


def _make(kind: str) -> Convert:
    if m := _LIST.fullmatch(kind):
        item = converter(m.group(1))
        return lambda data: None if data is None else [item(x) for x in data]
    if m := _DICT.fullmatch(kind):
        value = converter(m.group(2))
        if m.group(2) == "str":  # labels, annotations, selectors: keys and values recur
            return lambda data: None if data is None else {
                intern(k): intern(v) if type(v) is str else v for k, v in data.items()}
        return lambda data: None if data is None else {k: value(v) for k, v in data.items()}
    if kind == "datetime":
        return _datetime
    if kind == "date":
        return _date
    if kind == "object":
        return lambda data: data
    primitive = _PRIMITIVES.get(kind)
    if primitive is not None:
        return _primitive(primitive)
    return _model(getattr(client.models, kind))


def _primitive(klass: type) -> Convert:
    def conv(data: Any) -> Any:
        if data is None or type(data) is klass:
            return data
        try:
            return klass(data)
        except TypeError:
            return data
    return conv


def _model(klass: Any) -> Convert:
    types: dict[str, str] = klass.openapi_types  # type: ignore[attr-defined]
    if not types:
        return lambda data: data
    if getattr(klass, "discriminator_value_class_map", None):
        # No Kubernetes model has one; should one appear, the client's own path handles it.
        api: Any = client.ApiClient.__new__(client.ApiClient)  # no HTTP side needed
        return lambda data: api._ApiClient__deserialize(data, klass)
    attribute_map: dict[str, str] = klass.attribute_map  # type: ignore[attr-defined]
    # Converters are looked up on first use: models refer to themselves (JSONSchemaProps).
    kinds = {attribute_map[attr]: (_slot(klass, attr), kind) for attr, kind in types.items()}
    # A subclass whose class attributes are the absent fields (None): an instance's __dict__
    # holds only the fields the answer has, a few of the model's many.
    lean: Any = type(klass.__name__, (klass,), {
        **{slot: None for slot, _ in kinds.values()}, "discriminator": None,
        "__module__": klass.__module__, "__qualname__": klass.__qualname__})
    # JSON key -> (slot, converter, the primitive type a value may be stored as it comes).
    table: dict[str, tuple[str, Convert, type | None]] = {}

    def conv(data: Any) -> Any:
        if data is None:
            return None
        if not isinstance(data, dict):
            return data
        if not table:
            table.update((key, (slot, converter(kind), _PRIMITIVES.get(kind)))
                         for key, (slot, kind) in kinds.items())
        obj = lean.__new__(lean)
        state = obj.__dict__
        state["local_vars_configuration"] = client.Configuration.get_default()
        # Over the keys present (a few of a model's many fields), not over every field.
        for key, value in data.items():
            field = table.get(key)
            if field is None or value is None:
                continue
            slot, convert, primitive = field
            if type(value) is str:
                # Most values recur in every pod (image, policies, keys, defaults): one copy.
                state[slot] = intern(value) if primitive is str else convert(value)
            else:
                state[slot] = value if type(value) is primitive else convert(value)
        return obj
    return conv


def _slot(klass: Any, attr: str) -> str:
    """Where a model keeps ``attr``: ``self._<attr>``, name-mangled when ``attr`` itself starts
    with an underscore (``V1Probe._exec`` lives in ``self._V1Probe__exec``)."""
    slot = f"_{attr}"
    return f"_{klass.__name__.lstrip('_')}{slot}" if slot.startswith("__") else slot


def _datetime(data: Any) -> Any:
    if data is None:
        return None
    try:
        return dt.datetime.fromisoformat(data)
    except (TypeError, ValueError):
        pass
    try:
        return parse_datetime(data)
    except (TypeError, ValueError, OverflowError):
        raise ApiException(status=0,
                           reason=f"Failed to parse `{data}` as datetime object") from None


def _date(data: Any) -> Any:
    if data is None:
        return None
    try:
        return dt.date.fromisoformat(data)
    except (TypeError, ValueError):
        pass
    try:
        return parse_datetime(data).date()
    except (TypeError, ValueError, OverflowError):
        raise ApiException(status=0,
                           reason=f"Failed to parse `{data}` as date object") from None


class DecodingApiClient(client.ApiClient):  # type: ignore[misc]
    """An ``ApiClient`` whose answers are decoded by :func:`decode`."""

    def deserialize(self, response: Any, response_type: Any) -> Any:
        if response_type == "file" or not isinstance(response_type, str):
            return super().deserialize(response, response_type)
        try:
            data = json.loads(response.data)
        except ValueError:
            data = response.data
        return decode(data, response_type)


async def unanswered(call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
    """Make the API ``call`` (a ``CoreV1Api`` method) for its effect only: its answer (a whole
    Event or Pod the caller never reads) is not decoded. Raises ``ApiException`` on a status
    outside 2xx, as the client's own call does, with the body as text."""
    response = await call(*args, _preload_content=False, **kwargs)
    try:
        data = await response.read()
    finally:
        response.release()
    if not 200 <= response.status <= 299:
        error = ApiException(status=response.status, reason=response.reason)
        error.body = data.decode("utf-8", "replace")
        error.headers = response.headers
        raise error
