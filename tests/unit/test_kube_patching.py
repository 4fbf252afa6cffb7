"""The fake kube-apiserver's patch functions against the specs they implement.

RFC 7386 and RFC 6902 cases are the RFCs' own appendix examples; the
strategic-merge cases mirror apimachinery's documented directives and its
list-ordering rules, since clients see the resulting order verbatim.
"""

from __future__ import annotations

from typing import Any

import pytest

from fakes.kubernetes.patching import (
    DEPLOYMENT_SCHEMA,
    FieldStrategy,
    JsonPatchError,
    PatchDecodeError,
    StrategicMergePatchError,
    apply_json_patch,
    decode_json_patch,
    json_merge_patch,
    parse_pointer,
    strategic_merge_patch,
)

# -- RFC 7386 ----------------------------------------------------------------

RFC7386_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "expected"), RFC7386_APPENDIX_A)
def test_json_merge_patch_matches_rfc7386_examples(original: Any, patch: Any, expected: Any) -> None:
    assert json_merge_patch(original, patch) == expected


def test_json_merge_patch_replaces_lists_and_leaves_input_untouched() -> None:
    original = {"spec": {"containers": [{"name": "app", "image": "a:1"}, {"name": "sidecar", "image": "s:1"}]}}
    result = json_merge_patch(original, {"spec": {"containers": [{"name": "app", "image": "a:2"}]}})
    assert result == {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}
    assert len(original["spec"]["containers"]) == 2


# -- RFC 6902 ----------------------------------------------------------------

RFC6902_APPENDIX_A_SUCCESS = [
    ("A.1", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
    ("A.2", {"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ("A.3", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ("A.4", {"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ("A.5", {"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    (
        "A.6",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    ("A.11", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ("A.14", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ("A.16", {"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
    ("copy", {"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
    ("replace root", {"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
]


@pytest.mark.parametrize(("case", "document", "operations", "expected"), RFC6902_APPENDIX_A_SUCCESS)
def test_json_patch_matches_rfc6902_examples(case: str, document: Any, operations: Any, expected: Any) -> None:
    assert apply_json_patch(document, operations) == expected, case


RFC6902_APPENDIX_A_ERRORS = [
    ("A.9 test fails", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),
    ("A.12 missing parent", {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),
    ("A.15 string is not number", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),
    ("bool is not number", {"a": 1}, [{"op": "test", "path": "/a", "value": True}]),
    ("remove missing", {"a": 1}, [{"op": "remove", "path": "/b"}]),
    ("replace missing", {"a": 1}, [{"op": "replace", "path": "/b", "value": 2}]),
    ("index out of range", {"a": [1]}, [{"op": "add", "path": "/a/5", "value": 2}]),
    ("leading zero index", {"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}]),
    ("move into own child", {"a": {"b": {}}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}]),
    ("unknown op", {"a": 1}, [{"op": "frobnicate", "path": "/a"}]),
    ("missing value", {"a": 1}, [{"op": "add", "path": "/b"}]),
]


@pytest.mark.parametrize(("case", "document", "operations"), RFC6902_APPENDIX_A_ERRORS)
def test_json_patch_errors_are_json_patch_errors_with_status_422(case: str, document: Any, operations: Any) -> None:
    with pytest.raises(JsonPatchError) as caught:
        apply_json_patch(document, operations)
    assert caught.value.status == 422, case


def test_json_patch_is_atomic() -> None:
    document = {"a": 1, "b": [1, 2]}
    operations = [{"op": "replace", "path": "/a", "value": 5}, {"op": "test", "path": "/b/0", "value": 9}]
    with pytest.raises(JsonPatchError):
        apply_json_patch(document, operations)
    assert document == {"a": 1, "b": [1, 2]}


def test_pointer_unescapes_tilde_sequences_in_the_right_order() -> None:
    assert parse_pointer("/a~1b/c~0d/~01") == ["a/b", "c~d", "~1"]
    assert parse_pointer("") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"spec": {"replicas": 3}},
            "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
        ),
        ("replace", "error decoding patch: json: cannot unmarshal string into Go value of type []handlers.jsonPatchOp"),
        ([1], "error decoding patch: json: cannot unmarshal number into Go value of type handlers.jsonPatchOp"),
        (
            [{"op": "add", "path": 7}],
            "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.path of type string",
        ),
    ],
)
def test_decode_json_patch_rejects_non_lists_like_the_apiserver(body: Any, message: str) -> None:
    with pytest.raises(PatchDecodeError) as caught:
        decode_json_patch(body)
    assert caught.value.message == message
    assert caught.value.status == 400


def test_decode_json_patch_with_field_validation_ignore_uses_the_library_wording() -> None:
    with pytest.raises(PatchDecodeError) as caught:
        decode_json_patch({"spec": {}}, strict=False)
    assert caught.value.message == "json: cannot unmarshal object into Go value of type jsonpatch.Patch"


# -- strategic merge patch ------------------------------------------------------

LIST = {"mergingList": FieldStrategy(merge_key="name"), "mergingIntList": FieldStrategy(merge_scalars=True)}


def _deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"replicas": 2, "template": {"spec": {"containers": list(containers)}}}}


def _containers(result: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = result["spec"]["template"]["spec"]["containers"]
    return containers


def test_smp_merges_containers_by_name_and_keeps_the_others() -> None:
    original = _deployment(
        {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "sidecar:1"},
    )
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}
    result = strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA)
    assert _containers(result) == [
        {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}]},
        {"name": "sidecar", "image": "sidecar:1"},
    ]
    assert result["spec"]["replicas"] == 2


def test_smp_merges_nested_keyed_lists_env_ports_volume_mounts() -> None:
    original = _deployment(
        {
            "name": "app",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "volumeMounts": [{"mountPath": "/data", "name": "data"}],
            "args": ["--old"],
        }
    )
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "B", "value": "3"}],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                            "args": ["--new"],
                        }
                    ]
                }
            }
        }
    }
    app = _containers(strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA))[0]
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert app["ports"] == [{"containerPort": 8080, "protocol": "TCP", "name": "http"}]
    assert app["volumeMounts"] == [{"mountPath": "/data", "name": "data", "readOnly": True}]
    assert app["args"] == ["--new"], "lists without a merge strategy are replaced"


def test_smp_null_deletes_a_key() -> None:
    original = {"metadata": {"labels": {"a": "1", "b": "2"}}}
    assert strategic_merge_patch(original, {"metadata": {"labels": {"a": None}}}, DEPLOYMENT_SCHEMA) == {"metadata": {"labels": {"b": "2"}}}


def test_smp_patch_delete_directive_removes_list_element_by_key() -> None:
    original = _deployment({"name": "app", "image": "a"}, {"name": "sidecar", "image": "s"})
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}
    assert _containers(strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA)) == [{"name": "app", "image": "a"}]


def test_smp_patch_replace_directive_in_list_replaces_whole_list() -> None:
    original = _deployment({"name": "app", "image": "a"}, {"name": "sidecar", "image": "s"})
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "o"}, {"$patch": "replace"}]}}}}
    assert _containers(strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA)) == [{"name": "only", "image": "o"}]


def test_smp_patch_replace_directive_on_map_takes_patch_literally() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}
    assert strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA) == {"spec": {"strategy": {"type": "Recreate"}}}


def test_smp_patch_delete_directive_on_map_empties_it() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}
    result = strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA)
    assert result["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {}}


def test_smp_retain_keys_clears_fields_not_listed() -> None:
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA) == {"spec": {"strategy": {"type": "Recreate"}}}


def test_smp_retain_keys_must_cover_patched_fields() -> None:
    with pytest.raises(StrategicMergePatchError) as caught:
        strategic_merge_patch({"a": {}}, {"a": {"$retainKeys": ["x"], "y": 1}}, {})
    assert caught.value.status == 400
    assert caught.value.message == "invalid patch format of retainKeys"


def test_smp_set_element_order_reorders_the_merged_list() -> None:
    original = _deployment({"name": "a", "image": "a"}, {"name": "b", "image": "b"})
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
                    "containers": [{"name": "c", "image": "c"}],
                }
            }
        }
    }
    names = [c["name"] for c in _containers(strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA))]
    assert names == ["b", "c", "a"]


def test_smp_delete_from_primitive_list_and_set_merge_of_finalizers() -> None:
    original = {"metadata": {"finalizers": ["a", "b", "c"]}}
    deleted = strategic_merge_patch(original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}, DEPLOYMENT_SCHEMA)
    assert deleted == {"metadata": {"finalizers": ["a", "c"]}}
    merged = strategic_merge_patch(original, {"metadata": {"finalizers": ["d", "a"]}}, DEPLOYMENT_SCHEMA)
    assert merged == {"metadata": {"finalizers": ["d", "a", "b", "c"]}}


@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [
        # Patch order wins for patched items; server-only items keep their place.
        ([1, {"name": 2, "value": "b"}, 3], [{"name": 3, "value": "c"}, {"name": 1, "value": "a"}], None),
        # A new element sorts ahead of the remaining server-only elements.
        (["a", "b"], [{"name": "c"}], ["c", "a", "b"]),
        (["a", "b", "c"], [{"name": "b", "value": "x"}], ["a", "b", "c"]),
    ],
)
def test_smp_list_order_follows_apimachinery(original: list[Any], patch: list[Any], expected: list[Any] | None) -> None:
    items = [o if isinstance(o, dict) else {"name": o} for o in original]
    result = strategic_merge_patch({"mergingList": items}, {"mergingList": patch}, LIST)["mergingList"]
    if expected is None:
        assert result == [{"name": 2, "value": "b"}, {"name": 3, "value": "c"}, {"name": 1, "value": "a"}]
    else:
        assert [r["name"] for r in result] == expected


def test_smp_scalar_merge_list_is_a_set_in_patch_order() -> None:
    assert strategic_merge_patch({"mergingIntList": [1, 2, 3]}, {"mergingIntList": [3, 1]}, LIST) == {"mergingIntList": [2, 3, 1]}


def test_smp_element_without_merge_key_is_a_plain_500_error() -> None:
    original = _deployment({"name": "app", "image": "a"})
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "nginx:1.25"}]}}}}
    with pytest.raises(StrategicMergePatchError) as caught:
        strategic_merge_patch(original, patch, DEPLOYMENT_SCHEMA)
    assert caught.value.status == 500
    assert caught.value.message == "map: map[image:nginx:1.25] does not contain declared merge key: name"


def test_smp_unknown_directive_is_rejected() -> None:
    with pytest.raises(StrategicMergePatchError) as caught:
        strategic_merge_patch({"a": {"b": 1}}, {"a": {"$patch": "explode"}}, {})
    assert caught.value.message == "unknown patch type: explode in map: map[$patch:explode]"


def test_smp_lists_of_lists_are_unsupported_with_422() -> None:
    with pytest.raises(StrategicMergePatchError) as caught:
        strategic_merge_patch({"mergingIntList": [[1]]}, {"mergingIntList": [[2]]}, LIST)
    assert caught.value.status == 422


def test_smp_new_key_is_taken_with_directives_applied() -> None:
    result = strategic_merge_patch({}, {"spec": {"a": {"$patch": "delete"}, "b": None, "c": [1]}}, {})
    assert result == {"spec": {"a": {}, "c": [1]}}
