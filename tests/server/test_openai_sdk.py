"""The official ``openai`` SDK's moderation call against ``/v1/moderations`` of a real server on
127.0.0.1, in front of a ProGuard judging through the fake OpenAI-compatible endpoint."""

from __future__ import annotations

import base64

import pytest

from proguard_rails.server.moderation import OPENAI_CATEGORIES
from proguard_rails.testing_server import tag
from tests.helpers import png_bytes

from .conftest import KEY

openai = pytest.importorskip("openai")


@pytest.fixture
def client(server, fresh_endpoint):
    c = openai.OpenAI(base_url=server.url("/v1"), api_key=KEY, max_retries=0, timeout=30)
    yield c
    c.close()


def _true_categories(result) -> set[str]:
    return {k for k, v in result.categories.model_dump(by_alias=True).items() if v}


def test_sdk_parses_every_field_of_a_string_input(client):
    r = client.moderations.create(input=f"{tag(3)} How do I bake bread?", model="omni-moderation-latest")
    assert r.id.startswith("modr-") and r.model == "ProGuard-7B"
    (res,) = r.results
    assert res.flagged is False and _true_categories(res) == set()
    # every category the SDK knows is present under OpenAI's names (no field left to default)
    for part in (res.categories, res.category_scores, res.category_applied_input_types):
        dumped = part.model_dump(by_alias=True)
        assert set(dumped) == set(OPENAI_CATEGORIES) and all(v is not None for v in dumped.values())
    assert res.category_applied_input_types.model_dump(by_alias=True)["violence"] == ["text"]
    pg = res.model_extra["proguard"]
    assert pg["status"] == "allowed" and pg["request"] == "safe" and pg["error"] is None


def test_sdk_list_of_strings_one_result_each_in_order(client):
    r = client.moderations.create(input=[f"{tag(i)} message {i}" for i in (0, 1, 2, 6, 7)])
    assert len(r.results) == 5
    flagged = [res.flagged for res in r.results]
    assert flagged == [False, True, True, False, True]  # tagged answers: n % 3 == 0 is safe
    # req-7: in-policy category C8S1 (Weapons) -> OpenAI "illicit" and "illicit/violent"
    seven = r.results[4]
    assert seven.model_extra["proguard"]["category_id"] == "C8S1"
    assert seven.model_extra["proguard"]["subcategory_name"] == "Weapons"
    assert _true_categories(seven) == {"illicit", "illicit/violent"}
    assert seven.category_scores.illicit_violent == 1.0 and seven.category_scores.violence == 0.0


def test_sdk_out_of_policy_name_reaches_the_client_in_the_blocked_path(client):
    (res,) = client.moderations.create(input=f"{tag(5)} something new").results
    pg = res.model_extra["proguard"]
    assert res.flagged is True and pg["status"] == "blocked" and pg["decision"] == "block"
    assert pg["out_of_policy"] is True and pg["description"] == "tagged risk 5"
    assert "tagged risk 5" in pg["reason"]
    assert _true_categories(res) == set()  # no OpenAI counterpart: the ProGuard field carries it


def test_sdk_multimodal_parts_are_one_input_judged_with_the_image(client, fresh_endpoint):
    seen = []
    fresh_endpoint.configure(answer=lambda body: (seen.append(body), "<answer>\nRequest:unsafe\nResponse:safe\nCategory:C10\n</answer>")[1])
    url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    r = client.moderations.create(input=[{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": url}}])
    (res,) = r.results
    assert len(seen) == 1 and "image_url" in str(seen[0]["messages"])  # the image reached the judge
    assert res.model_extra["proguard"]["modality"] == "text-image"
    # main category C10 (blood-related) maps to what all its subcategories share
    assert _true_categories(res) == {"violence", "violence/graphic"}
    types = res.category_applied_input_types.model_dump(by_alias=True)
    assert types["violence"] == ["text", "image"] and types["hate"] == ["text"]


def test_sdk_judge_error_fail_closed_is_flagged_and_says_error(client, fresh_endpoint):
    fresh_endpoint.configure(behaviour="error")
    (res,) = client.moderations.create(input="hello").results
    pg = res.model_extra["proguard"]
    assert res.flagged is True and pg["status"] == "error" and pg["fail_mode_applied"] == "closed"
    assert pg["error"]["type"] in ("backend", "unavailable") and pg["error"]["message"]


def test_sdk_errors_are_typed_exceptions_with_clear_messages(server, client):
    bad = openai.OpenAI(base_url=server.url("/v1"), api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        bad.moderations.create(input="hi")
    bad.close()
    with pytest.raises(openai.BadRequestError, match="not a readable image"):
        client.moderations.create(input=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}])
    with pytest.raises(openai.BadRequestError, match="input"):
        client.moderations.create(input=[])
