"""The planner: keys, dedup, packing, chained jobs, selection, re-targeting, estimates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from generator.campaign import load_campaign
from generator.errors import PlanError, UsageError
from generator.planner import KEY_SCHEMA, PlanOptions, estimate, plan
from generator.planview import plan_json, render_explain, render_plan_text
from tests.builders import planned, write_campaign

HERO = """
[defaults]
seed = 7
add_watermark = false

[[jobs]]
id = "hero"
operation = "recontext"
prompt = "{{ product.description }} {{ scene.prompt }}, {{ style }}"
images = 2
[jobs.matrix]
product = "*"
scene = "*"
style = ["minimal", "vibrant"]
"""


def keys(p) -> list[str]:
    return list(p.requests)


def test_golden_key(repo: Path) -> None:
    # If this fails, the key material changed: every stored image would be made again. Do that only on purpose,
    # with KEY_SCHEMA bumped, and update this literal.
    p = planned(repo, HERO)
    first = p.variants[0]
    assert first.id == "hero/product=shoe/scene=beach/style=minimal"
    assert first.images == (("f1aef4a5b2d4b0e11e2d081d42c3f082", 0), ("f1aef4a5b2d4b0e11e2d081d42c3f082", 1))


def test_same_input_same_plan(repo: Path) -> None:
    a = planned(repo, HERO)
    b = planned(repo, HERO)
    ja, jb = (json.dumps(plan_json(x, *estimate(x), full=True), sort_keys=True) for x in (a, b))
    assert ja == jb


@pytest.mark.parametrize(
    ("change", "changed"),
    [
        (lambda t: t.replace("{{ style }}", "{{ style }} style"), 8),  # the template: every prompt
        (lambda t: t.replace('prompt = "on a beach"', 'prompt = "on a sandy beach"'), 4),  # one scene
        (lambda t: t.replace("seed = 7", "seed = 8"), 8),  # a parameter
        (lambda t: t.replace('style = ["minimal", "vibrant"]', 'style = ["minimal", "bold"]'), 4),  # an axis value
        (lambda t: t.replace('id = "c"', 'id = "c"\nname = "Renamed"'), 0),  # not part of any request
        (lambda t: t.replace("images = 2", 'images = 2\nname = "Hero shots"'), 0),  # the job's display name
    ],
)
def test_keys_change_exactly_with_their_material(repo: Path, change, changed: int) -> None:
    before = planned(repo, HERO)
    path = repo / "c.toml"
    path.write_text(change(path.read_text()))
    after = plan(load_campaign(path))
    assert len(set(keys(after)) - set(keys(before))) == changed


def test_input_bytes_change_keys_of_their_product_only(repo: Path) -> None:
    before = planned(repo, HERO)
    image = Image.open(repo / "assets" / "mug.png")
    image.putpixel((0, 0), (1, 2, 3, 255))
    image.save(repo / "assets" / "mug.png")
    after = plan(load_campaign(repo / "c.toml"))
    changed = [v.id for v in after.variants if v.images != next(b for b in before.variants if b.id == v.id).images]
    assert changed == [v.id for v in after.variants if v.product == "mug"]


def test_identical_requests_are_shared(repo: Path) -> None:
    body = """
    [[jobs]]
    id = "a"
    operation = "generate"
    prompt = "a poster of {{ product.description }}"
    [jobs.matrix]
    product = "*"
    scene = "*"

    [[jobs]]
    id = "b"
    operation = "generate"
    prompt = "a poster of {{ product.description }}"
    [jobs.matrix]
    product = ["shoe"]
    """
    p = planned(repo, body)
    assert len(p.variants) == 5  # 4 in a (the scene is not in the prompt), 1 in b
    assert len(p.requests) == 2  # one per product
    jobs, _total = estimate(p)
    assert (jobs["a"].requests, jobs["b"].requests) == (2, 0)


def test_packing_and_seeds_of_further_parts(repo: Path) -> None:
    body = """
    [[jobs]]
    id = "many"
    operation = "generate"
    prompt = "a poster"
    images = 9
    seed = 100
    add_watermark = false
    """
    p = planned(repo, body)
    requests = list(p.requests.values())
    assert [r.sample_count for r in requests] == [4, 4, 1]
    assert [r.params["seed"] for r in requests] == [100, 101, 102]
    assert [r.part for r in requests] == [0, 1, 2]
    assert p.variants[0].images == tuple((r.key, i) for r in requests for i in range(r.sample_count))


def test_gemini_makes_one_image_per_request(repo: Path) -> None:
    body = """
    [[jobs]]
    id = "g"
    operation = "generate"
    model = "gemini-2.5-flash-image"
    prompt = "a poster"
    images = 3
    """
    p = planned(repo, body)
    assert [r.sample_count for r in p.requests.values()] == [1, 1, 1]
    assert len(set(p.requests)) == 3


def test_variants_differing_only_in_image_count_share_the_largest_request(repo: Path) -> None:
    body = """
    [[jobs]]
    id = "a"
    operation = "generate"
    prompt = "a poster"
    images = 2

    [[jobs]]
    id = "b"
    operation = "generate"
    prompt = "a poster"
    images = 3
    """
    p = planned(repo, body)
    (request,) = p.requests.values()
    assert request.sample_count == 3
    assert [len(v.images) for v in p.variants] == [2, 3]


def test_chained_job_keys_derive_from_upstream(repo: Path) -> None:
    body = (
        HERO
        + """
    [[jobs]]
    id = "print"
    operation = "upscale"
    source = "hero"
    [jobs.matrix]
    style = ["minimal"]
    """
    )
    p = planned(repo, body)
    prints = [v for v in p.variants if v.job == "print"]
    assert len(prints) == 4 * 2  # 4 minimal hero variants x 2 images each
    assert prints[0].id == "print/product=shoe/scene=beach/style=minimal/image=1"
    first = p.requests[prints[0].images[0][0]]
    upstream_key, index = p.variants[0].images[0]
    assert first.inputs[0].digest == f"request:{upstream_key}#{index}"
    # Changing the hero prompt changes the print keys too.
    path = repo / "c.toml"
    path.write_text(path.read_text().replace("{{ style }}", "{{ style }}!"))
    again = plan(load_campaign(path))
    assert not {k for v in again.variants if v.job == "print" for k, _ in v.images} & set(p.requests)


def test_only_keeps_the_sources_a_selection_needs(repo: Path) -> None:
    body = (
        HERO
        + """
    [[jobs]]
    id = "print"
    operation = "upscale"
    source = "hero"
    """
    )
    p = planned(repo, body, only=("job=print,product=mug,scene=beach|studio,style=vibrant",))
    selected = [v.id for v in p.variants if v.selected]
    needed = [v.id for v in p.variants if not v.selected]
    assert len(selected) == 4
    assert needed == ["hero/product=mug/scene=beach/style=vibrant", "hero/product=mug/scene=studio/style=vibrant"]


def test_only_rejects_unknown_keys(repo: Path) -> None:
    with pytest.raises(UsageError, match="no variant has 'sceen'"):
        planned(repo, HERO, only=("sceen=beach",))


def test_model_map_retargets_and_switches_backend(repo: Path) -> None:
    body = """
    [defaults]
    backend = "vertex"

    [[jobs]]
    id = "ads"
    operation = "generate"
    model = "imagen-4.0-generate-001"
    prompt = "a poster"
    aspect_ratio = "16:9"
    """
    before = planned(repo, body)
    after = planned(repo, body, model_map={"imagen-4.0-generate-001": "gemini-2.5-flash-image"})
    (a,), (b,) = before.requests.values(), after.requests.values()
    assert (a.backend, a.model) == ("vertex", "imagen-4.0-generate-001")
    assert (b.backend, b.model) == ("gemini", "gemini-2.5-flash-image")
    assert a.key != b.key
    assert next(w.message for w in before.warnings).startswith("imagen-4.0-generate-001 is deprecated")
    assert after.warnings == ()


def test_endpoint_is_part_of_real_backend_keys(repo: Path) -> None:
    body = '[defaults]\nbackend = "vertex"\n[[jobs]]\nid = "a"\noperation = "generate"\nprompt = "x"\n'
    google = planned(repo, body)
    emulator = planned(repo, body, endpoint="http://127.0.0.1:8765")
    assert set(google.requests).isdisjoint(emulator.requests)


def test_settings_from_defaults_that_a_model_lacks_are_dropped_silently(repo: Path) -> None:
    body = """
    [defaults]
    negative_prompt = "text"
    language = "en"

    [[jobs]]
    id = "g"
    operation = "generate"
    model = "gemini-2.5-flash-image"
    prompt = "a poster"

    [[jobs]]
    id = "h"
    operation = "generate"
    model = "gemini-2.5-flash-image"
    prompt = "a poster"
    negative_prompt = "logos"
    """
    p = planned(repo, body)
    assert all("negative_prompt" not in r.params for r in p.requests.values())
    assert [w.key for w in p.warnings] == ["jobs[1].negative_prompt"]


def test_a_million_variants_are_refused_before_expansion(repo: Path) -> None:
    axis = ", ".join(f'"{i}"' for i in range(1001))
    body = f'[[jobs]]\nid = "huge"\noperation = "generate"\nprompt = "x"\n[jobs.matrix]\na = [{axis}]\nb = [{axis}]\n'
    with pytest.raises(PlanError, match=r"this matrix expands to 1,002,001 variants, over the limit of 1,000,000"):
        planned(repo, body)


def test_estimates(repo: Path) -> None:
    body = """
    [defaults]
    backend = "vertex"

    [limits]
    requests_per_minute = { "imagen-4.0-generate-001" = 10 }
    price_per_image_usd = { "imagen-4.0-generate-001" = 0.5 }

    [[jobs]]
    id = "ads"
    operation = "generate"
    model = "imagen-4.0-generate-001"
    prompt = "{{ product.description }} {{ scene.prompt }}"
    images = 3
    [jobs.matrix]
    product = "*"
    scene = "*"
    """
    p = planned(repo, body)
    cached = set(list(p.requests)[:1])
    _jobs, total = estimate(p, cached.__contains__)
    assert (total.variants, total.images, total.requests, total.cached, total.to_send) == (4, 12, 4, 1, 3)
    assert total.cost_usd == pytest.approx(3 * 3 * 0.5)
    assert total.min_seconds == pytest.approx(60 * 3 / 10)
    _, spread = estimate(p, cached.__contains__, locations=3)
    assert spread.min_seconds == pytest.approx(60 * 3 / 30)


def test_plan_json_snapshot(data_repo: Path, snapshot) -> None:
    p = plan(load_campaign("valid/basic.toml"))
    doc = plan_json(p, *estimate(p), full=True)
    snapshot.assert_match(json.dumps(doc, indent=2, sort_keys=True) + "\n", "basic.plan.json")


def test_plan_text_and_explain_snapshots(examples: Path, run_cli, snapshot) -> None:
    result = run_cli("plan", "campaigns/summer-launch.toml")
    assert result.code == 0, result.transcript()
    snapshot.assert_match(result.out, "summer-launch.plan.txt")
    holiday = run_cli("plan", "campaigns/holiday-gifts.toml", "--only", "job=lifestyle")
    snapshot.assert_match(holiday.out, "holiday-gifts.only.txt")
    explained = run_cli(
        "explain", "campaigns/summer-launch.toml", "job=hero,product=trail-shoe,scene=studio,style=noir"
    )
    assert explained.code == 0, explained.transcript()
    snapshot.assert_match(explained.out, "explain.txt")


def test_plan_refuses_over_limits(repo: Path, run_cli) -> None:
    write_campaign(repo, "[limits]\nmax_requests = 1\n" + HERO)
    result = run_cli("plan", "c.toml")
    assert result.code == 2
    assert "over limit: c.toml: would send 8 requests, over [limits].max_requests = 1" in result.out


def test_explain_ambiguous_and_missing(examples: Path, run_cli) -> None:
    ambiguous = run_cli("explain", "campaigns/summer-launch.toml", "job=hero")
    assert ambiguous.code == 2
    assert "matches 11 variants; be more specific" in ambiguous.err
    missing = run_cli("explain", "campaigns/summer-launch.toml", "hero/nope")
    assert missing.code == 2
    assert "no variant 'hero/nope'" in missing.err


def test_render_functions_are_pure(examples: Path) -> None:
    p = plan(load_campaign("campaigns/summer-launch.toml"))
    jobs, total = estimate(p)
    assert render_plan_text(p, jobs, total) == render_plan_text(p, jobs, total)
    assert render_explain(p, p.variants[0]) == render_explain(p, p.variants[0])


def test_plan_options_default() -> None:
    assert PlanOptions().only == ()


@settings(max_examples=300, deadline=None)
@given(
    prompt=st.one_of(st.none(), st.text()),
    params=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.one_of(
            st.integers(), st.floats(allow_nan=False), st.booleans(), st.text(), st.lists(st.integers(), max_size=3)
        ),
    ),
    part=st.integers(0, 5),
    backend=st.text(min_size=1, max_size=30),
)
def test_fast_key_material_is_the_canonical_json(prompt, params, part, backend) -> None:
    from generator.planner import _canonical, key_material

    inputs = [["product", "sha256:ab", None], ["style", "sha256:cd", 2]]
    expected = _canonical(
        {
            "v": KEY_SCHEMA,
            "backend": backend,
            "model": "m",
            "operation": "generate",
            "prompt": prompt,
            "params": params,
            "inputs": inputs,
            "part": part,
        }
    )
    assert key_material(backend, "m", "generate", prompt, _canonical(params), _canonical(inputs), part) == expected


def test_command_line_backend_serves_each_model_through_its_own_api(repo: Path) -> None:
    body = """
    [[jobs]]
    id = "imagen"
    operation = "generate"
    model = "imagen-4.0-generate-001"
    prompt = "a poster"

    [[jobs]]
    id = "gemini"
    operation = "generate"
    model = "gemini-2.5-flash-image"
    prompt = "a banner"

    [[jobs]]
    id = "default"
    operation = "generate"
    prompt = "a flyer"
    """
    for flag, default_model in (("vertex", "imagen-4.0-generate-001"), ("gemini", "gemini-2.5-flash-image")):
        p = planned(repo, body, backend=flag)
        got = {r.job: (r.backend, r.model) for r in p.requests.values()}
        assert got["imagen"] == ("vertex", "imagen-4.0-generate-001")
        assert got["gemini"] == ("gemini", "gemini-2.5-flash-image")
        assert got["default"][1] == default_model


def test_semantic_masks_are_refused_for_gemini(repo: Path) -> None:
    body = """
    [[jobs]]
    id = "swap"
    operation = "bgswap"
    model = "gemini-2.5-flash-image"
    prompt = "a kitchen"
    mask_mode = "semantic"
    mask_classes = [7]
    [jobs.matrix]
    product = ["shoe"]
    """
    with pytest.raises(PlanError, match='cannot use mask_mode = "semantic"'):
        planned(repo, body)


def test_plan_header_names_the_backends_requests_use(repo: Path, run_cli) -> None:
    write_campaign(
        repo,
        '[defaults]\nbackend = "vertex"\n[[jobs]]\nid = "a"\noperation = "generate"\n'
        'model = "imagen-4.0-generate-001"\nprompt = "x"\n',
    )
    result = run_cli("plan", "c.toml", "--model-map", "imagen-4.0-generate-001=gemini-2.5-flash-image")
    assert "backend: gemini\n" in result.out
