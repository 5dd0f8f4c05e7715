"""The executor: reruns send nothing, failures are classified and isolated, quota is respected, runs resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.backends.base import GeneratedImage, Outcome, PermanentError, TransientError
from generator.campaign import load_campaign
from generator.errors import PlanError, StoreError
from generator.executor import RunOptions
from generator.outputs import locked
from generator.planner import PlanOptions, parse_selector
from generator.ratelimit import FakeClock
from generator.run import GenerateOptions, generate
from generator.store import Store
from tests.builders import write_campaign
from tests.scripted import ScriptedBackend, png

POSTERS = """
[[jobs]]
id = "poster"
operation = "generate"
prompt = "{{ product.description }} {{ scene.prompt }}"
images = 2
[jobs.matrix]
product = "*"
scene = "*"
"""


def run(repo: Path, backend: ScriptedBackend, only: tuple[str, ...] = (), **run_options):
    campaign = load_campaign(repo / "c.toml")
    run_options.setdefault("concurrency", 1)
    options = GenerateOptions(
        plan=PlanOptions(only=tuple(parse_selector(s) for s in only)),
        run=RunOptions(backoff_base=0.01, **run_options),
        report=False,
    )
    return generate(campaign, lambda name: backend, Store(repo / ".campaign-cache"), options, clock=FakeClock())


def test_first_run_makes_everything_and_a_rerun_sends_nothing(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    first = run(repo, ScriptedBackend())
    assert (first.run.count("generated"), first.run.sent, first.complete) == (4, 4, True)
    files = sorted(p.relative_to(repo).as_posix() for p in (repo / "output" / "c" / "images").rglob("*.png"))
    assert files[:2] == [
        "output/c/images/poster/mug/beach/default-1.png",
        "output/c/images/poster/mug/beach/default-2.png",
    ]
    assert len(files) == 8
    second = run(repo, again := ScriptedBackend())
    assert (second.run.sent, again.calls, second.run.count("cached")) == (0, [], 4)
    assert second.manifest["totals"]["unchanged"] == 8


def test_a_changed_scene_remakes_exactly_its_variants(repo: Path) -> None:
    path = write_campaign(repo, POSTERS)
    run(repo, ScriptedBackend())
    path.write_text(path.read_text().replace('prompt = "on a beach"', 'prompt = "on a stony beach"'))
    result = run(repo, backend := ScriptedBackend())
    assert len(backend.calls) == 2
    changed = {v["id"] for v in result.manifest["variants"] if any(i["change"] == "changed" for i in v["images"])}
    assert changed == {"poster/product=shoe/scene=beach", "poster/product=mug/scene=beach"}
    previous = repo / "output" / "c" / "previous" / "poster" / "shoe" / "beach" / "default-1.png"
    assert previous.is_file()  # the image before the change, for the report's comparison


def test_permanent_failure_is_recorded_and_the_rest_goes_on(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    backend = ScriptedBackend({"*": [PermanentError("400 INVALID_ARGUMENT: bad request")]})
    result = run(repo, backend)
    assert result.run.count("failed") == 1
    assert result.run.count("generated") == 3
    assert not result.complete
    failed = [i for v in result.manifest["variants"] for i in v["images"] if i["status"] == "failed"]
    assert [i["reason"] for i in failed] == ["400 INVALID_ARGUMENT: bad request"] * 2
    # Nothing is stored for a failure: the next run tries again, and only that request.
    again = run(repo, retry := ScriptedBackend())
    assert (len(retry.calls), again.complete) == (1, True)


def test_transient_errors_are_retried_with_backoff(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    backend = ScriptedBackend({"*": [TransientError("503 UNAVAILABLE"), TransientError("timeout")]})
    result = run(repo, backend)
    assert result.complete
    assert result.run.sent == 6  # 4 requests, the first one sent 3 times


def test_transient_errors_give_up_after_max_attempts(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    backend = ScriptedBackend({"*": [TransientError("503 UNAVAILABLE")] * 3})
    result = run(repo, backend, max_attempts=3)
    failed = [o for o in result.run.outcomes.values() if o.status == "failed"]
    assert [(o.reason, o.attempts) for o in failed] == [("503 UNAVAILABLE (after 3 attempts)", 3)]


def test_quota_errors_slow_down_without_failing(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    backend = ScriptedBackend({"*": [TransientError("429", quota=True, retry_after=2)] * 5})
    result = run(repo, backend)
    assert result.complete
    assert result.run.throttled == 5
    assert result.run.sent == 9


def test_a_quota_that_stays_exhausted_ends_the_run_cleanly(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    backend = ScriptedBackend({"*": [TransientError("429", quota=True, retry_after=30)] * 1000})
    result = run(repo, backend, quota_patience=120)
    assert result.run.stopped is not None
    assert "quota stayed exhausted for 120s" in result.run.stopped
    assert result.run.count("skipped") == 4
    assert result.manifest["totals"]["pending"] == 8
    resumed = run(repo, ScriptedBackend())
    assert resumed.complete


def test_filtered_and_blocked_are_stored_and_not_sent_again(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    backend = ScriptedBackend(
        {
            "*": [
                Outcome("filtered", reason="All images were filtered out because they violated usage guidelines."),
                Outcome("blocked", reason="The prompt could not be submitted."),
                Outcome("generated", (GeneratedImage(png((1, 2, 3)), "image/png"),)),  # one of two images filtered
            ]
        }
    )
    result = run(repo, backend)
    statuses = sorted(i["status"] for v in result.manifest["variants"] for i in v["images"])
    # One request filtered (2 images), one blocked (2), one with 1 of its 2 images filtered, one fine.
    assert statuses == ["blocked", "blocked", "filtered", "filtered", "filtered", "generated", "generated", "generated"]
    again = run(repo, rerun := ScriptedBackend())
    assert rerun.calls == []
    assert not again.complete
    # --retry-filtered asks again for requests that produced no image; a partial result is kept as it is.
    retried = run(repo, ScriptedBackend(), retry_filtered=True)
    assert retried.run.sent == 2


def test_chained_requests_wait_for_their_source(repo: Path) -> None:
    write_campaign(
        repo,
        POSTERS + '\n[[jobs]]\nid = "big"\noperation = "upscale"\nsource = "poster"\n'
        '[jobs.matrix]\nproduct = ["shoe"]\n',
    )
    backend = ScriptedBackend()
    result = run(repo, backend, concurrency=4)
    assert result.complete
    order = backend.calls
    plan_requests = result.plan.requests
    for i, key in enumerate(order):
        for item in plan_requests[key].inputs:
            if item.upstream:
                assert order.index(item.upstream[0]) < i


def test_a_failed_source_fails_its_dependents(repo: Path) -> None:
    write_campaign(repo, POSTERS + '\n[[jobs]]\nid = "big"\noperation = "upscale"\nsource = "poster"\n')
    backend = ScriptedBackend({"*": [PermanentError("400 no")]})
    result = run(repo, backend)
    dependents = [o for o in result.run.outcomes.values() if o.reason and "source request" in o.reason]
    assert len(dependents) == 2
    assert all(o.status == "failed" for o in dependents)


def test_max_requests_caps_and_the_next_run_continues(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    first = run(repo, ScriptedBackend(), max_requests=1)
    assert (first.run.sent, first.run.count("skipped")) == (1, 3)
    run(repo, backend := ScriptedBackend())
    assert len(backend.calls) == 3


def test_force_remakes_everything(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    run(repo, ScriptedBackend())
    result = run(repo, backend := ScriptedBackend(), force=True)
    assert len(backend.calls) == 4
    assert result.manifest["totals"]["unchanged"] == 8  # deterministic backend: same bytes


def test_only_runs_a_selection_and_the_manifest_still_covers_everything(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    result = run(repo, backend := ScriptedBackend(), only=("product=shoe,scene=beach",))
    assert len(backend.calls) == 1
    assert len(result.manifest["variants"]) == 4
    assert result.manifest["totals"]["pending"] == 6


def test_outputs_of_removed_variants_are_pruned(repo: Path) -> None:
    path = write_campaign(repo, POSTERS)
    run(repo, ScriptedBackend())
    path.write_text(path.read_text().replace('scene = "*"', 'scene = ["studio"]'))
    run(repo, ScriptedBackend())
    remaining = sorted(p.parent.name for p in (repo / "output" / "c" / "images").rglob("*.png"))
    assert remaining == ["studio"] * 4
    assert not (repo / "output" / "c" / "images" / "poster" / "shoe" / "beach").exists()


def test_limits_refuse_a_run_before_it_starts(repo: Path) -> None:
    write_campaign(repo, "[limits]\nmax_requests = 3\n" + POSTERS)
    with pytest.raises(PlanError, match=r"refused before sending anything: c\.toml: would send 4 requests"):
        run(repo, backend := ScriptedBackend())
    assert backend.calls == []
    assert run(repo, ScriptedBackend(), max_requests=3).run.sent == 3


def test_a_second_run_at_once_is_refused(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    with locked(repo / "output" / "c"), pytest.raises(StoreError, match="is in use by another `campaign generate`"):
        run(repo, ScriptedBackend())


def test_manifest_records_provenance(repo: Path) -> None:
    from generator.postprocess import read_provenance

    write_campaign(repo, POSTERS)
    result = run(repo, ScriptedBackend())
    image = result.manifest["variants"][0]["images"][0]
    data = (repo / "output" / "c" / image["file"]).read_bytes()
    meta = read_provenance(data)
    assert meta is not None
    assert (meta["request"], meta["prompt"]) == (image["request"], result.manifest["variants"][0]["prompt"])
    on_disk = json.loads((repo / "output" / "c" / "manifest.json").read_text())
    assert on_disk["variants"][0]["images"][0]["digest"] == image["digest"]


def test_written_files_are_readable_by_others(repo: Path) -> None:
    write_campaign(repo, POSTERS)
    run(repo, ScriptedBackend())
    for path in [repo / "output" / "c" / "manifest.json", repo / "c.lock"]:
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_preview_drafts_wait_for_no_quota(repo: Path) -> None:
    from generator.backends.preview import PreviewBackend

    # 40 drafts of a model whose Vertex quota is 2 a minute: none of them waits, since no service is called.
    write_campaign(
        repo,
        '[limits]\nrequests_per_minute = { "imagen-4.0-generate-001" = 2 }\n'
        + POSTERS.replace("images = 2", 'images = 1\nmodel = "imagen-4.0-generate-001"\nimage_size = "1K"')
        .replace("[jobs.matrix]", '[jobs.matrix]\nn = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]')
        .replace('{{ scene.prompt }}"', '{{ scene.prompt }} {{ n }}"'),
    )
    clock = FakeClock()
    options = GenerateOptions(run=RunOptions(concurrency=2), report=False)
    result = generate(
        load_campaign(repo / "c.toml"),
        lambda name: PreviewBackend(),
        Store(repo / ".campaign-cache"),
        options,
        clock=clock,
    )
    assert result.run.count("generated") == 40
    assert clock.now() == 0.0  # the limiter never made anyone wait
