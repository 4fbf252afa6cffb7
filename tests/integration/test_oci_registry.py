"""The registry client against the fake OCI registry over HTTP: the token and basic auth flows, tag pages, manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.backends.registry import RegistryClient, RegistryRefused, RegistryUnreachable, repository_of
from bot.backends.registry.challenge import parse_challenge
from bot.backends.registry.versions import RegistryTags, newest_first
from bot.catalog.config import ImageRegistry, OpsbotConfig
from fakes.oci_registry import FakeOciRegistry

PASSWORD = "s3cret-registry-password"


def credentials(tmp_path: Path, password: str = PASSWORD) -> dict[str, str]:
    (tmp_path / "user").write_text("opsbot\n")
    (tmp_path / "password").write_text(password + "\n")
    return {"username_file": str(tmp_path / "user"), "password_file": str(tmp_path / "password")}


def test_token_flow_answers_the_bearer_challenge_then_reuses_the_token(tmp_path: Path) -> None:
    with FakeOciRegistry(auth="token", users={"opsbot": PASSWORD}) as registry:
        digest = registry.push("shop/checkout", "1.4.1", "1.4.2")
        client = RegistryClient(ImageRegistry(url=registry.url, **credentials(tmp_path)))
        assert client.manifest_digest("shop/checkout", "1.4.2") == digest
        assert client.manifest_digest("shop/checkout", "1.4.3") is None
        assert registry.state.token_requests == 1, "one token for the repository, reused"
        first = next(request for request in registry.requests if request.path.startswith("/v2/"))
        assert first.header("authorization") is None, "the first try carries no credentials"
        token_request = next(request for request in registry.requests if request.path == "/token")
        assert token_request.query["scope"] == ["repository:shop/checkout:pull"]
        assert token_request.query["service"] == ["fake-registry"]


def test_an_expired_token_is_fetched_again(tmp_path: Path) -> None:
    with FakeOciRegistry(auth="token", users={"opsbot": PASSWORD}) as registry:
        registry.push("shop/checkout", "1.4.2")
        client = RegistryClient(ImageRegistry(url=registry.url, **credentials(tmp_path)))
        assert client.manifest_exists("registry.example.com/shop/checkout:1.4.2")
        registry.expire_tokens()
        assert client.manifest_exists("registry.example.com/shop/checkout:1.4.2")
        assert registry.state.token_requests == 2


def test_wrong_password_is_refused_without_showing_it(tmp_path: Path) -> None:
    with FakeOciRegistry(auth="token", users={"opsbot": PASSWORD}) as registry:
        registry.push("shop/checkout", "1.4.2")
        client = RegistryClient(ImageRegistry(url=registry.url, **credentials(tmp_path, "wrong-password")))
        with pytest.raises(RegistryRefused) as refused:
            client.manifest_digest("shop/checkout", "1.4.2")
    assert "refused opsbot's credentials (401)" in refused.value.user_message
    assert "wrong-password" not in str(refused.value.user_message) + str(refused.value.details)


def test_basic_auth_registry(tmp_path: Path) -> None:
    with FakeOciRegistry(auth="basic", users={"opsbot": PASSWORD}) as registry:
        registry.push("shop/checkout", "1.4.2")
        client = RegistryClient(ImageRegistry(url=registry.url, **credentials(tmp_path)))
        assert client.list_tags("shop/checkout") == ["1.4.2"]
        anonymous = RegistryClient(ImageRegistry(url=registry.url))
        with pytest.raises(RegistryRefused, match="401 UNAUTHORIZED"):
            anonymous.list_tags("shop/checkout")


def test_tags_are_read_page_by_page_following_link_headers() -> None:
    with FakeOciRegistry() as registry:
        tags = [f"1.{minor}.{patch}" for minor in range(3) for patch in range(90)]
        registry.push("shop/checkout", *tags)
        listed = RegistryClient(ImageRegistry(url=registry.url)).list_tags("shop/checkout")
        pages = [request for request in registry.requests if request.path.endswith("/tags/list")]
    assert listed == sorted(tags)
    assert len(pages) == 3
    assert pages[1].query == {"n": ["100"], "last": [sorted(tags)[99]]}


def test_an_unknown_repository_has_no_tags_and_no_manifests() -> None:
    with FakeOciRegistry() as registry:
        client = RegistryClient(ImageRegistry(url=registry.url))
        assert client.list_tags("shop/nothing") == []
        assert client.manifest_digest("shop/nothing", "1.0") is None


def test_a_registry_outage_is_unreachable_not_missing() -> None:
    with FakeOciRegistry() as registry:
        registry.push("shop/checkout", "1.4.2")
        registry.fail_with(503)
        with pytest.raises(RegistryUnreachable, match="answered 503"):
            RegistryClient(ImageRegistry(url=registry.url)).manifest_digest("shop/checkout", "1.4.2")


def test_a_registry_token_file_is_sent_as_a_bearer_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("static-token\n")
    with FakeOciRegistry() as registry:
        registry.push("shop/checkout", "1.4.2")
        assert RegistryClient(ImageRegistry(url=registry.url, token_file=str(tmp_path / "token"))).list_tags("shop/checkout")
        assert registry.requests[0].header("authorization") == "Bearer static-token"


def test_repository_of_an_image_reference() -> None:
    registry = ImageRegistry(url="https://mirror.example.com")
    assert repository_of("registry.example.com/shop/checkout:1.4.2", registry) == "shop/checkout"
    assert repository_of("localhost:5000/checkout@sha256:" + "a" * 64, registry) == "checkout"
    assert repository_of("nginx:1.27", registry) == "library/nginx"
    assert repository_of("acme/api:2", registry) == "acme/api"
    assert repository_of("anything:1", ImageRegistry(url="https://r.example.com", repository="shop/api")) == "shop/api"


def test_challenge_parameters_are_read_with_quotes_and_commas() -> None:
    challenge = parse_challenge(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'
    )
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.parameters == {
        "realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull,push",
    }  # fmt: skip
    assert parse_challenge("") is None


def test_registry_tags_suggest_versions_newest_first() -> None:
    with FakeOciRegistry(auth="token") as registry:
        registry.push("shop/checkout", "1.9.3", "1.10.0", "1.10.0-rc1", "latest", "1.2.0")
        config = OpsbotConfig.model_validate(
            {
                "registry": {"url": registry.url, "repository": "shop/checkout"},
                "services": {"checkout": {"environments": {"production": {"kubernetes": {"namespace": "shop", "deployment": "checkout"}}}}},
            }
        )
        tags = RegistryTags(config, RegistryClient)
        target = config.services["checkout"].environments["production"].target
        assert tags.versions("checkout", "production", target) == ["1.10.0", "1.10.0-rc1", "1.9.3", "1.2.0", "latest"]


def test_newest_first_orders_versions_by_their_numbers() -> None:
    assert newest_first(["v1.2", "v1.10", "sha-abc", "1.4.2-rc1-beta", "1.4.2-rc1", "1.4.2"]) == [
        "v1.10", "1.4.2", "1.4.2-rc1-beta", "1.4.2-rc1", "v1.2", "sha-abc",
    ]  # fmt: skip
