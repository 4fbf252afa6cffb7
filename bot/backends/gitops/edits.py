"""Read and change the one image value of a gitops file, leaving every other byte alone.

ruamel.yaml's round-trip loader finds the value (a kustomize ``images:`` entry's ``newTag``, or a
dotted ``field`` such as ``image.tag`` in a Helm values file) and tells its line and column; the
edit then replaces exactly that token in the original text. Comments, key order, indentation,
quoting and blank lines stay as the team wrote them, so the diff an approver reads is one line
(PyYAML's ``dump`` would rewrite the whole file). Only a value that does not exist yet (a
kustomize entry without ``newTag``) is inserted through ruamel's round-trip dumper.
"""

from __future__ import annotations

import difflib
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.catalog.config import GitopsTarget

if TYPE_CHECKING:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

# ruamel.yaml (~10 ms of imports) loads in the helpers below, when a file is read or changed: the
# gitops actions import this module, and `opsbot validate` imports them for their argument models.


class EditError(ValueError):
    """The file cannot be read or changed the way the target says (the message names file and value)."""


@dataclass(frozen=True)
class ImageValue:
    """Where the image tag lives in the file, and what it says now."""

    tag: str | None
    image: str
    """The whole reference as the file describes it (``registry/checkout:1.4.1``), for messages and status."""


def read_image(text: str, target: GitopsTarget) -> ImageValue:
    """The image value the target points at in ``text``."""
    document = _load(text, target)
    if target.kustomize_image is not None:
        entry = _kustomize_entry(document, target)
        tag = _text_or_none(entry.get("newTag"))
        digest = _text_or_none(entry.get("digest"))
        name = _text_or_none(entry.get("newName")) or target.kustomize_image
        image = f"{name}@{digest}" if digest else f"{name}:{tag}" if tag else name
        return ImageValue(tag=digest or tag, image=image)
    assert target.field is not None
    parent, key = _field_parent(document, target)
    value = _text_or_none(parent.get(key))
    if value is None:
        raise EditError(f"{target.path} has no value at {target.field}")
    repository = _text_or_none(parent.get("repository")) if key == "tag" else None  # the Helm chart convention
    return ImageValue(tag=value, image=f"{repository}:{value}" if repository else value)


def set_image_tag(text: str, target: GitopsTarget, tag: str) -> str:
    """``text`` with the target's image tag set to ``tag``; a kustomize digest is dropped (it would pin the old content)."""
    document = _load(text, target)
    if target.kustomize_image is not None:
        entry = _kustomize_entry(document, target)
        if "digest" in entry:
            return _dump_changed(document, target, lambda: _replace_digest(entry, tag))
        if tag.startswith("sha256:"):
            return _dump_changed(document, target, lambda: _replace_digest(entry, tag))
        if "newTag" not in entry:
            return _dump_changed(document, target, lambda: entry.__setitem__("newTag", tag))
        return _replace_token(text, entry, "newTag", tag)
    assert target.field is not None
    parent, key = _field_parent(document, target)
    if key not in parent:
        raise EditError(f"{target.path} has no value at {target.field}")
    return _replace_token(text, parent, key, tag)


def unified_diff(before: str, after: str, path: str) -> str:
    """The ``git diff``-style text an approver reads (no ``diff --git`` header: one file)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), fromfile=f"a/{path}", tofile=f"b/{path}", n=2
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n")


# --------------------------------------------------------------------------- helpers


def _yaml() -> YAML:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line in the rare dump path
    return yaml


def _load(text: str, target: GitopsTarget) -> Any:
    from ruamel.yaml.error import YAMLError

    try:
        return _yaml().load(text)
    except YAMLError as error:
        raise EditError(f"{target.path} is not valid YAML: {str(error).splitlines()[0]}") from None


def _kustomize_entry(document: Any, target: GitopsTarget) -> CommentedMap:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    images = document.get("images") if isinstance(document, CommentedMap) else None
    if not isinstance(images, CommentedSeq):
        raise EditError(f"{target.path} has no kustomize images: list")
    for entry in images:
        if isinstance(entry, CommentedMap) and entry.get("name") == target.kustomize_image:
            return entry
    names = ", ".join(str(entry.get("name")) for entry in images if isinstance(entry, CommentedMap)) or "none"
    raise EditError(f"{target.path} has no images: entry named {target.kustomize_image} (entries: {names})")


def _field_parent(document: Any, target: GitopsTarget) -> tuple[CommentedMap, str]:
    from ruamel.yaml.comments import CommentedMap

    assert target.field is not None
    *parents, key = target.field.split(".")
    node = document
    for index, part in enumerate(parents):
        if not isinstance(node, CommentedMap) or not isinstance(node.get(part), CommentedMap):
            where = ".".join(parents[: index + 1])
            raise EditError(f"{target.path} has no mapping at {where} (looking for {target.field})")
        node = node[part]
    if not isinstance(node, CommentedMap):
        raise EditError(f"{target.path} is not a YAML mapping (looking for {target.field})")
    return node, key


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


_PLAIN_END = re.compile(r"\s+#|\s*$")


def _replace_token(text: str, mapping: CommentedMap, key: str, value: str) -> str:
    """Replace the scalar token of ``mapping[key]`` in ``text``, keeping its quoting style."""
    line_number, column = mapping.lc.value(key)
    lines = text.splitlines(keepends=True)
    line = lines[line_number]
    rest = line[column:]
    quote = rest[:1]
    if quote in ("'", '"'):
        end = _closing_quote(rest, quote)
        token = quote + value + quote
    else:
        stripped = rest.rstrip("\r\n")
        found = _PLAIN_END.search(stripped)
        end = found.start() if found else len(stripped)
        token = value if _reads_as_string(value) else f'"{value}"'
    lines[line_number] = line[:column] + token + rest[end:]
    return "".join(lines)


def _closing_quote(rest: str, quote: str) -> int:
    index = 1
    while index < len(rest):
        if rest[index] == quote:
            if quote == "'" and rest[index + 1 : index + 2] == "'":
                index += 2
                continue
            return index + 1
        if quote == '"' and rest[index] == "\\":
            index += 2
            continue
        index += 1
    raise EditError("a quoted value spans several lines; opsbot changes only one-line values")


def _reads_as_string(value: str) -> bool:
    """Whether ``value`` written plain stays a string (``1.5`` or ``true`` would not)."""
    from ruamel.yaml import YAML

    loaded = YAML(typ="safe").load(f"v: {value}\n")
    return isinstance(loaded, dict) and isinstance(loaded.get("v"), str) and loaded["v"] == value


def _replace_digest(entry: CommentedMap, tag: str) -> None:
    if tag.startswith("sha256:"):
        entry["digest"] = tag
        entry.pop("newTag", None)
    else:
        entry.pop("digest", None)
        entry["newTag"] = tag


def _dump_changed(document: Any, target: GitopsTarget, change: Any) -> str:
    from ruamel.yaml.error import YAMLError

    change()
    out = io.StringIO()
    yaml = _yaml()
    yaml.indent(mapping=2, sequence=4, offset=2)
    try:
        yaml.dump(document, out)
    except YAMLError as error:
        raise EditError(f"cannot write {target.path}: {error}") from None
    return out.getvalue()
