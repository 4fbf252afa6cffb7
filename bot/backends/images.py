"""Container image references, one set of rules for every backend.

Kubernetes accepts ``sha256:<digest>`` where a tag goes and pins that content
(``repo@sha256:…``); ECS task definitions take the same references, but opsbot's ``tag``
argument there must be a real tag (ECS's own console and CLI resolve tags, not digests),
so each backend says whether a digest may stand in for a tag.
"""

from __future__ import annotations

import re
from typing import ClassVar, Self

from pydantic import field_validator, model_validator

from bot.catalog.actions import ActionArgs

TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
"""A Docker tag: letters, digits, ``_ . -``, at most 128 characters, not starting with ``.`` or ``-``."""
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
IMAGE_PATTERN = r"^[^\s@]+(@sha256:[a-f0-9]{64})?$"
"""A reference without spaces, optionally pinned to one digest."""
MAX_IMAGE_LENGTH = 1_024

_TAG = re.compile(TAG_PATTERN)
_DIGEST = re.compile(DIGEST_PATTERN)
_IMAGE = re.compile(IMAGE_PATTERN)


def check_tag(value: str, *, digest_allowed: bool) -> str:
    """``value`` if it is a valid tag (or, where allowed, a ``sha256:`` digest); else ``ValueError`` saying what is allowed."""
    if _TAG.match(value) or (digest_allowed and _DIGEST.match(value)):
        return value
    allowed = "letters, digits, _ . - (at most 128)" + ("; or sha256:<64 hex digits>" if digest_allowed else "")
    raise ValueError(f"{value!r} is not a valid image tag ({allowed})")


def check_image(value: str) -> str:
    """``value`` if it is a valid image reference; else ``ValueError``."""
    if len(value) <= MAX_IMAGE_LENGTH and _IMAGE.match(value):
        return value
    raise ValueError(
        f"{value!r} is not a valid image reference (no spaces, at most {MAX_IMAGE_LENGTH} characters, one @sha256: digest at most)"
    )


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference.

    The tag is the part after the last ``:`` that follows the last ``/``, so a registry
    port (``host:5000/repo``) is never mistaken for a tag; a digest follows ``@``.
    """
    name, _, digest = image.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :], digest or None
    return name, None, digest or None


def with_tag(image: str, tag: str) -> str:
    """``image`` with its tag (and any digest) replaced, keeping registry and repository; a ``sha256:`` tag pins a digest.

    A digest is dropped when a tag is set: it pins the old content, so keeping it would
    make the new tag meaningless to the kubelet or to ECS.
    """
    repository, _, _ = split_image(image)
    if _DIGEST.match(tag):
        return f"{repository}@{tag}"
    return f"{repository}:{tag}"


class ImageChoiceArgs(ActionArgs):
    """Arguments naming the new image: exactly one of ``tag`` (keeps the repository) or ``image`` (a full reference).

    One base for every backend that sets an image, so the rule and its message cannot drift
    apart; a backend only says whether a ``sha256:`` digest may stand in for a tag.
    """

    digest_for_tag: ClassVar[bool] = True
    tag: str | None = None
    image: str | None = None

    @field_validator("tag")
    @classmethod
    def _valid_tag(cls, value: str | None) -> str | None:
        return None if value is None else check_tag(value, digest_allowed=cls.digest_for_tag)

    @field_validator("image")
    @classmethod
    def _valid_image(cls, value: str | None) -> str | None:
        return None if value is None else check_image(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.tag is None) == (self.image is None):
            raise ValueError("give exactly one of tag or image")
        return self
