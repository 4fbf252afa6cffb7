"""One rule for naming the new image in every backend: exactly one of ``tag`` or ``image``.

A runbook author who writes both (or neither) gets the same sentence from ``opsbot validate``
whichever backend the step runs on; only the digest-for-a-tag allowance differs (ECS resolves
tags, not digests).
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.backends.aws.ecs_actions import EcsDeployArgs
from bot.backends.images import ImageChoiceArgs
from bot.backends.kubernetes.rollout_actions import SetImageArgs

DIGEST = "sha256:" + "a" * 64
BACKENDS = [pytest.param(SetImageArgs, id="kubernetes.set_image"), pytest.param(EcsDeployArgs, id="ecs.deploy")]


@pytest.mark.parametrize("args_model", BACKENDS)
@pytest.mark.parametrize("given", [{}, {"tag": "1.4.2", "image": "registry.example.com/checkout:1.4.2"}], ids=["neither", "both"])
def test_neither_or_both_is_refused_with_the_same_sentence(args_model: type[ImageChoiceArgs], given: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="give exactly one of tag or image"):
        args_model.model_validate(given)


@pytest.mark.parametrize("args_model", BACKENDS)
def test_a_tag_with_a_shell_character_is_refused_saying_what_is_allowed(args_model: type[ImageChoiceArgs]) -> None:
    with pytest.raises(ValidationError, match=r"not a valid image tag \(letters, digits"):
        args_model.model_validate({"tag": "1.4.2;rm"})


def test_a_digest_stands_in_for_a_tag_on_kubernetes_but_not_on_ecs() -> None:
    assert SetImageArgs.model_validate({"tag": DIGEST}).tag == DIGEST
    with pytest.raises(ValidationError, match="not a valid image tag"):
        EcsDeployArgs.model_validate({"tag": DIGEST})
