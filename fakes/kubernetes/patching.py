"""The three PATCH dialects a Kubernetes apiserver accepts, as pure functions.

* :func:`json_merge_patch` - RFC 7386: objects merge, everything else
  (lists included) is replaced, ``null`` deletes.
* :func:`apply_json_patch` - RFC 6902 operations, all-or-nothing.
* :func:`strategic_merge_patch` - Kubernetes' own dialect: like RFC 7386,
  except that lists the schema marks as "merge" are merged element by element
  (by a merge key such as a container's ``name``) and the ``$patch``,
  ``$retainKeys``, ``$setElementOrder/`` and ``$deleteFromPrimitiveList/``
  directives are honoured. Element ordering follows apimachinery's rules, so a
  client sees the same list order it would see from a real cluster.

Nothing here knows about HTTP; errors carry the status code the apiserver
would answer with so the API layer can translate them without guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fakes.kubernetes.json_values import JsonObject, deep_copy, go_json_type, go_value, json_equal

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER_PREFIX = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_PREFIX = "$deleteFromPrimitiveList/"


class PatchError(Exception):
    """A patch could not be applied; ``status`` is the HTTP code to answer."""

    status: int = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class JsonPatchError(PatchError):
    """An RFC 6902 operation failed (the apiserver answers 422)."""

    status = 422


class PatchDecodeError(PatchError):
    """The patch body is not of the shape its content type requires (400)."""

    status = 400


class StrategicMergePatchError(PatchError):
    """A strategic merge patch failed; ``status`` follows apimachinery.

    Malformed directives are 400, lists of lists are 422, and everything else
    (a missing merge key, an unknown ``$patch`` value) surfaces as a plain Go
    error, which the apiserver reports as 500 with no reason.
    """


# ---------------------------------------------------------------------------
# RFC 7386 JSON Merge Patch
# ---------------------------------------------------------------------------


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch and return the new document."""
    return _merge_patch(deep_copy(target), patch)


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result: JsonObject = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------------------
# RFC 6902 JSON Patch
# ---------------------------------------------------------------------------


def decode_json_patch(body: Any, *, strict: bool = True) -> list[JsonObject]:
    """Check a decoded body is a list of operation objects, like the apiserver.

    With the default ``fieldValidation=Warn`` (``strict``) the apiserver first
    decodes the body into ``[]handlers.jsonPatchOp``, so an object body fails
    with ``json: cannot unmarshal object into Go value of type
    []handlers.jsonPatchOp``; with ``fieldValidation=Ignore`` the json-patch
    library's own decode fails instead. That exact text matters: it is what a
    client that sent a merge-style body under the JSON Patch type gets back.
    """
    if body is None:
        return []
    if not isinstance(body, list):
        kind = go_json_type(body)
        if not strict:
            raise PatchDecodeError(f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")
        raise PatchDecodeError(f"error decoding patch: json: cannot unmarshal {kind} into Go value of type []handlers.jsonPatchOp")
    for op in body:
        if not isinstance(op, dict):
            kind = go_json_type(op)
            raise PatchDecodeError(f"error decoding patch: json: cannot unmarshal {kind} into Go value of type handlers.jsonPatchOp")
        for member in ("op", "path", "from"):
            if member in op and op[member] is not None and not isinstance(op[member], str):
                kind = go_json_type(op[member])
                raise PatchDecodeError(
                    f"error decoding patch: json: cannot unmarshal {kind} into Go struct field jsonPatchOp.{member} of type string"
                )
    return body


def apply_json_patch(document: Any, operations: Sequence[Mapping[str, Any]]) -> Any:
    """Apply RFC 6902 operations atomically and return the new document.

    Any failing operation (including a failed ``test``) raises
    :class:`JsonPatchError` and leaves ``document`` untouched.
    """
    doc = deep_copy(document)
    for index, operation in enumerate(operations):
        doc = _apply_operation(doc, operation, index)
    return doc


def _apply_operation(doc: Any, operation: Mapping[str, Any], index: int) -> Any:
    op = operation.get("op")
    path = _required_pointer(operation, "path", index)
    if op == "add":
        return _add(doc, path, deep_copy(_required_value(operation, index)))
    if op == "remove":
        return _remove(doc, path)
    if op == "replace":
        value = deep_copy(_required_value(operation, index))
        _resolve(doc, path)
        return value if not path else _add(_remove(doc, path), path, value)
    if op == "move":
        source = _required_pointer(operation, "from", index)
        if path[: len(source)] == source and len(path) > len(source):
            raise JsonPatchError(f"operation {index}: cannot move a value into one of its children")
        value = _resolve(doc, source)
        return _add(_remove(doc, source), path, value)
    if op == "copy":
        source = _required_pointer(operation, "from", index)
        return _add(doc, path, deep_copy(_resolve(doc, source)))
    if op == "test":
        expected = _required_value(operation, index)
        if not json_equal(_resolve(doc, path), expected):
            raise JsonPatchError(f"operation {index}: test failed for path {operation['path']}")
        return doc
    raise JsonPatchError(f"operation {index}: unexpected op {op!r}")


def _required_value(operation: Mapping[str, Any], index: int) -> Any:
    if "value" not in operation:
        raise JsonPatchError(f"operation {index}: missing 'value'")
    return operation["value"]


def _required_pointer(operation: Mapping[str, Any], member: str, index: int) -> list[str]:
    raw = operation.get(member)
    if not isinstance(raw, str):
        raise JsonPatchError(f"operation {index}: missing '{member}'")
    return parse_pointer(raw)


def parse_pointer(pointer: str) -> list[str]:
    """Split an RFC 6901 JSON Pointer into unescaped reference tokens."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise JsonPatchError(f"invalid JSON pointer {pointer!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _array_index(segment: str, length: int, *, allow_end: bool) -> int:
    if segment == "-" and allow_end:
        return length
    if not segment.isdigit() or (segment != "0" and segment.startswith("0")):
        raise JsonPatchError(f"invalid array index {segment!r}")
    position = int(segment)
    limit = length if allow_end else length - 1
    if position > limit:
        raise JsonPatchError(f"array index {position} out of bounds")
    return position


def _resolve(doc: Any, tokens: Sequence[str]) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise JsonPatchError(f"path member {token!r} does not exist")
            current = current[token]
        elif isinstance(current, list):
            current = current[_array_index(token, len(current), allow_end=False)]
        else:
            raise JsonPatchError(f"cannot descend into a {go_json_type(current)} with {token!r}")
    return current


def _add(doc: Any, tokens: Sequence[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), allow_end=True), value)
    else:
        raise JsonPatchError(f"cannot add to a {go_json_type(parent)}")
    return doc


def _remove(doc: Any, tokens: Sequence[str]) -> Any:
    if not tokens:
        raise JsonPatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise JsonPatchError(f"cannot remove missing member {last!r}")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_array_index(last, len(parent), allow_end=False)]
    else:
        raise JsonPatchError(f"cannot remove from a {go_json_type(parent)}")
    return doc


# ---------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldStrategy:
    """Patch metadata for one field, as Go struct tags declare it.

    ``merge_key`` marks a list of objects merged element-wise
    (``patchStrategy:"merge" patchMergeKey:"name"``); ``merge_scalars`` marks a
    list of scalars merged as a set (``finalizers``). ``children`` describes the
    fields of the object, or of each list element.
    """

    merge_key: str | None = None
    merge_scalars: bool = False
    children: Mapping[str, FieldStrategy] = field(default_factory=dict)

    @property
    def merges(self) -> bool:
        """Whether lists under this field merge rather than replace."""
        return self.merge_key is not None or self.merge_scalars


Schema = Mapping[str, FieldStrategy]
_PLAIN = FieldStrategy()

_CONTAINER: Schema = {
    "env": FieldStrategy(merge_key="name"),
    "ports": FieldStrategy(merge_key="containerPort"),
    "volumeMounts": FieldStrategy(merge_key="mountPath"),
    "volumeDevices": FieldStrategy(merge_key="devicePath"),
}
_POD_SPEC: Schema = {
    "containers": FieldStrategy(merge_key="name", children=_CONTAINER),
    "initContainers": FieldStrategy(merge_key="name", children=_CONTAINER),
    "ephemeralContainers": FieldStrategy(merge_key="name", children=_CONTAINER),
    "volumes": FieldStrategy(merge_key="name"),
    "imagePullSecrets": FieldStrategy(merge_key="name"),
    "hostAliases": FieldStrategy(merge_key="ip"),
    "topologySpreadConstraints": FieldStrategy(merge_key="topologyKey"),
    "schedulingGates": FieldStrategy(merge_key="name"),
    "resourceClaims": FieldStrategy(merge_key="name"),
}
_OBJECT_META: Schema = {
    "finalizers": FieldStrategy(merge_scalars=True),
    "ownerReferences": FieldStrategy(merge_key="uid"),
}
POD_TEMPLATE_SCHEMA: Schema = {
    "metadata": FieldStrategy(children=_OBJECT_META),
    "spec": FieldStrategy(children=_POD_SPEC),
}
DEPLOYMENT_SCHEMA: Schema = {
    "metadata": FieldStrategy(children=_OBJECT_META),
    "spec": FieldStrategy(children={"template": FieldStrategy(children=POD_TEMPLATE_SCHEMA)}),
    "status": FieldStrategy(children={"conditions": FieldStrategy(merge_key="type")}),
}
SCALE_SCHEMA: Schema = {"metadata": FieldStrategy(children=_OBJECT_META)}


def strategic_merge_patch(original: JsonObject, patch: JsonObject, schema: Schema) -> JsonObject:
    """Apply a strategic merge patch to ``original`` under ``schema``."""
    return _merge_map(deep_copy(original), deep_copy(patch), schema)


def _merge_map(original: JsonObject | None, patch: JsonObject, schema: Schema) -> JsonObject:
    if DIRECTIVE in patch:
        return _map_directive(patch, schema)
    result: JsonObject = dict(original or {})
    _apply_retain_keys(result, patch)
    _apply_set_element_order(result, patch, schema)
    for key, value in list(patch.items()):
        if key.startswith(DELETE_FROM_PRIMITIVE_PREFIX):
            _delete_from_primitive_list(result, key, value)
    for key, value in patch.items():
        if key.startswith(("$", DELETE_FROM_PRIMITIVE_PREFIX)):
            continue
        if value is None:
            result.pop(key, None)
            continue
        strategy = schema.get(key, _PLAIN)
        current = result.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            result[key] = _merge_map(current, value, strategy.children)
        elif isinstance(current, list) and isinstance(value, list):
            result[key] = _merge_list(current, value, strategy)
        else:
            result[key] = _fresh(value, strategy)
    return result


def _fresh(value: Any, strategy: FieldStrategy) -> Any:
    """A patch value with nothing to merge into: taken as-is, minus directives.

    Go keeps the raw value and the typed decode later drops ``$``-keys, so the
    net effect is "directives applied against nothing".
    """
    if isinstance(value, dict):
        return _merge_map({}, value, strategy.children)
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            if isinstance(item, dict) and DIRECTIVE in item and set(item) - {DIRECTIVE} <= {strategy.merge_key}:
                continue
            out.append(_fresh(item, FieldStrategy(children=strategy.children)))
        return out
    return value


def _map_directive(patch: JsonObject, schema: Schema) -> JsonObject:
    directive = patch[DIRECTIVE]
    if directive == "replace":
        rest = {k: v for k, v in patch.items() if k != DIRECTIVE}
        return _merge_map({}, rest, schema)
    if directive == "delete":
        return {}
    raise StrategicMergePatchError(f"unknown patch type: {go_value(directive)} in map: {go_value(patch)}")


def _apply_retain_keys(result: JsonObject, patch: JsonObject) -> None:
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list):
        raise StrategicMergePatchError("invalid patch format of retainKeys", 400)
    allowed = set(keep)
    for key, value in patch.items():
        if value is None or key.startswith((SET_ORDER_PREFIX, DELETE_FROM_PRIMITIVE_PREFIX)):
            continue
        if key not in allowed:
            raise StrategicMergePatchError("invalid patch format of retainKeys", 400)
    for key in list(result):
        if key not in allowed:
            del result[key]


def _directive_target(key: str, prefix: str, error: str) -> str:
    name = key[len(prefix) :]
    if not name:
        raise StrategicMergePatchError(error, 400)
    return name


def _delete_from_primitive_list(result: JsonObject, key: str, values: Any) -> None:
    error = "invalid patch format of primitive list"
    name = _directive_target(key, DELETE_FROM_PRIMITIVE_PREFIX, error)
    if not isinstance(values, list):
        raise StrategicMergePatchError(error, 400)
    current = result.get(name)
    if isinstance(current, list):
        result[name] = [item for item in current if not any(json_equal(item, v) for v in values)]


def _apply_set_element_order(result: JsonObject, patch: JsonObject, schema: Schema) -> None:
    error = "invalid patch format of setElementOrder list"
    for key in [k for k in patch if k.startswith(SET_ORDER_PREFIX)]:
        order = patch.pop(key)
        name = _directive_target(key, SET_ORDER_PREFIX, error)
        if not isinstance(order, list):
            raise StrategicMergePatchError(error, 400)
        strategy = schema.get(name, _PLAIN)
        original = result.get(name)
        patch_list = patch.pop(name, None)
        if isinstance(original, list) and isinstance(patch_list, list):
            merged = _merge_list(original, patch_list, strategy)
        elif isinstance(patch_list, list):
            merged = _fresh(patch_list, strategy)
        elif isinstance(original, list):
            merged = original
        else:
            continue
        server_order = original if isinstance(original, list) else []
        result[name] = _order_by(merged, order, server_order, strategy.merge_key)


def _merge_list(original: list[Any], patch: list[Any], strategy: FieldStrategy) -> list[Any]:
    if not strategy.merges:
        replaced: list[Any] = _fresh(patch, strategy)
        return replaced
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        merged = _dedupe([*original, *patch])
        return _order_by(merged, patch, original, None)
    if strategy.merge_key is None:
        raise StrategicMergePatchError("cannot merge lists without merge key for type map")
    key = strategy.merge_key
    original, patch = _apply_list_directives(original, patch, key)
    merged = _merge_keyed(original, patch, key, strategy.children)
    return _order_by(merged, patch, original, key)


def _element_kind(*lists: list[Any]) -> str:
    kinds = {_kind_of(item) for items in lists for item in items}
    if "list" in kinds:
        raise StrategicMergePatchError("lists of lists are not supported", 422)
    if len(kinds) > 1:
        rendered = " ".join(go_value(items) for items in lists)
        raise StrategicMergePatchError(f"list element types are not identical: [{rendered}]")
    return kinds.pop()


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not any(json_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _apply_list_directives(original: list[Any], patch: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    """Handle ``$patch`` elements; returns (original after deletes, plain patch)."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise StrategicMergePatchError(_no_merge_key(item, key))
            original = [o for o in original if not json_equal(o.get(key), item[key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise StrategicMergePatchError("merging lists cannot yet be specified in the patch")
        else:
            raise StrategicMergePatchError(f"unknown patch type: {go_value(directive)} in map: {go_value(item)}")
    if replace:
        return [_fresh(item, _PLAIN) for item in plain], []
    return original, plain


def _no_merge_key(item: Any, key: str) -> str:
    return f"map: {go_value(item)} does not contain declared merge key: {key}"


def _merge_keyed(original: list[Any], patch: list[Any], key: str, children: Schema) -> list[Any]:
    merged = list(original)
    for item in patch:
        if key not in item:
            raise StrategicMergePatchError(_no_merge_key(item, key))
        position = _index_of(merged, item, key)
        if position >= 0:
            merged[position] = _merge_map(merged[position], item, children)
        else:
            merged.append(_fresh(item, FieldStrategy(children=children)))
    return merged


def _identity(item: Any, key: str | None) -> Any:
    return item.get(key) if key is not None and isinstance(item, dict) else item


def _index_of(items: Sequence[Any], needle: Any, key: str | None) -> int:
    wanted = _identity(needle, key)
    for position, item in enumerate(items):
        if json_equal(_identity(item, key), wanted):
            return position
    return -1


def _order_by(merged: list[Any], patch_order: list[Any], server_order: list[Any], key: str | None) -> list[Any]:
    """Order a merged list the way apimachinery's normalizeElementOrder does.

    Items named in the patch keep the patch's relative order, server-only items
    keep the live order, and the two runs are interleaved using the live
    order; an item new to the list sorts before the remaining server-only
    items, which is why an added container can appear first.
    """
    in_patch = [m for m in merged if _index_of(patch_order, m, key) >= 0]
    server_only = [m for m in merged if _index_of(patch_order, m, key) < 0]
    in_patch.sort(key=lambda m: _index_of(patch_order, m, key))
    server_only.sort(key=lambda m: _index_of(server_order, m, key))
    out: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(in_patch):
        if left >= len(server_only):
            out.append(in_patch[right])
            right += 1
        elif right >= len(in_patch):
            out.append(server_only[left])
            left += 1
        else:
            li = _index_of(server_order, server_only[left], key)
            ri = _index_of(server_order, in_patch[right], key)
            if 0 <= li < ri:
                out.append(server_only[left])
                left += 1
            else:
                out.append(in_patch[right])
                right += 1
    return out
