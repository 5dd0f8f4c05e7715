"""The executor: runs a plan's requests against a backend, within rate limits, and stores what they produce.

``execute(plan, ...)`` sends every request whose result is not in the store yet (a rerun of an unchanged
campaign sends nothing), with bounded concurrency, one rate-limit bucket per (model, location), and retries by
kind of failure:

- **quota (429)**: not counted as an attempt; the bucket pauses for Retry-After and slows down. When a model's
  quota stays exhausted for ``quota_patience`` seconds without a single success, its remaining requests are
  left for a later run and the run ends cleanly.
- **transient** (5xx, timeouts, dropped connections, malformed responses): retried with exponential backoff and
  jitter, up to ``max_attempts``.
- **permanent** (invalid argument, permission): recorded as failed, never retried in this run; the next run
  tries again (nothing is stored for a failure).
- **filtered / blocked**: a result like any other, stored, so that a rerun does not ask again (``--retry-filtered``
  does).

Results go to the store (atomic writes; the record is the commit point) as soon as they arrive, so Ctrl-C or a
kill loses only the requests in flight. When the store cannot be written (a full disk), the run stops at once and
raises the :class:`StoreError`: there is no point paying for images that cannot be kept.

Which layer retries: this one. The SDK's own retry is off: it would ignore Retry-After and retry behind the rate
limiter's back (API-NOTES §4).
"""

from __future__ import annotations

import queue
import random
import threading
import traceback
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from generator.backends.base import Backend, Outcome, PermanentError, TransientError
from generator.errors import StoreError
from generator.images import ImageProblem, digest_bytes, load_bytes
from generator.planner import Plan, Request, price_of, shard_of
from generator.postprocess import finish
from generator.ratelimit import Bucket, Clock, Limiter
from generator.store import Record, Store

Status = Literal["generated", "cached", "filtered", "blocked", "failed", "skipped"]
#: Longest single sleep of a worker waiting for its rate limit: it notices Ctrl-C or an exhausted quota this fast.
_SLEEP_STEP = 0.25


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = 4
    force: bool = False
    max_requests: int | None = None
    retry_filtered: bool = False
    max_attempts: int = 5
    quota_patience: float = 300.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    shard: tuple[int, int] | None = None  # (index, count): run only the requests of this shard


@dataclass(frozen=True)
class RequestOutcome:
    """How one request ended in this run."""

    key: str
    status: Status
    record: Record | None = None
    reason: str | None = None
    attempts: int = 0
    sent: int = 0


@dataclass(frozen=True)
class RunResult:
    outcomes: Mapping[str, RequestOutcome]
    sent: int
    throttled: int
    started: str
    finished: str
    seconds: float
    stopped: str | None
    cost_usd: float

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == status)


class Progress(Protocol):
    def start(self, total: int, cached: int) -> None: ...

    def advance(self, outcome: RequestOutcome) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    def start(self, total: int, cached: int) -> None:
        pass

    def advance(self, outcome: RequestOutcome) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class _State:
    stop: threading.Event = field(default_factory=threading.Event)
    fatal: StoreError | None = None  # the store cannot be written: the run stops and raises it
    exhausted: dict[str, str] = field(default_factory=dict)  # model -> message
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def execute(
    plan: Plan,
    backend_for: Callable[[str], Backend],
    store: Store,
    limiter: Limiter,
    clock: Clock,
    options: RunOptions | None = None,
    progress: Progress | None = None,
    locations_for: Callable[[Request], Sequence[str]] = lambda r: (r.location or "default",),
) -> RunResult:
    """Run the requests of ``plan`` that the store does not hold yet.

    Args:
        backend_for: the backend serving a request's ``backend`` name (preview, vertex, gemini).
        locations_for: the locations a request may go to (each has its own quota bucket).

    Raises:
        Interrupted: Ctrl-C; carries what finished.
        StoreError: a result could not be stored (disk full, store not writable); the run stopped there.
    """
    options = options or RunOptions()
    progress = progress or NoProgress()
    store.sweep()  # temporary files of runs killed while writing
    started, t0 = clock.wall(), clock.now()
    outcomes: dict[str, RequestOutcome] = {}
    to_run: list[Request] = []
    for request in plan.requests.values():
        if options.shard is not None and shard_of(plan, request.key, options.shard[1]) != options.shard[0]:
            continue  # another shard's
        record = None if options.force else store.get(request.key)
        if record is not None and (record.status == "generated" or not options.retry_filtered):
            outcomes[request.key] = RequestOutcome(request.key, "cached", record)
        else:
            to_run.append(request)
    if options.max_requests is not None and len(to_run) > options.max_requests:
        for request in to_run[options.max_requests :]:
            outcomes[request.key] = RequestOutcome(request.key, "skipped", reason="over --max-requests")
        to_run = to_run[: options.max_requests]
    progress.start(len(to_run), len(outcomes))
    state = _State()
    runner = _Runner(plan, backend_for, store, limiter, clock, options, state, locations_for)
    try:
        _schedule(to_run, outcomes, runner, options.concurrency, progress, state)
    except KeyboardInterrupt:
        state.stop.set()
        for request in to_run:
            outcomes.setdefault(request.key, RequestOutcome(request.key, "skipped", reason="interrupted"))
        raise Interrupted(
            _result(outcomes, state, limiter, plan, started, clock.wall(), clock.now() - t0, "interrupted")
        ) from None
    finally:
        progress.finish()
    if state.fatal is not None:
        raise state.fatal
    stopped = None
    if state.exhausted:
        stopped = "; ".join(state.exhausted.values())
    return _result(outcomes, state, limiter, plan, started, clock.wall(), clock.now() - t0, stopped)


class Interrupted(Exception):
    """Ctrl-C during a run; carries what was finished, so the caller can still write the manifest."""

    def __init__(self, result: RunResult) -> None:
        super().__init__("interrupted")
        self.result = result


def _result(
    outcomes: dict[str, RequestOutcome],
    state: _State,
    limiter: Limiter,
    plan: Plan,
    started: str,
    finished: str,
    seconds: float,
    stopped: str | None,
) -> RunResult:
    cost = 0.0
    for o in outcomes.values():
        if (
            o.status in ("generated", "filtered", "blocked")
            and o.record is not None
            and o.record.backend in ("vertex", "gemini")
        ):
            cost += price_of(plan, o.record.model) * len(o.record.images)
    throttled = sum(b.throttled for b in limiter.buckets.values())
    return RunResult(dict(outcomes), state.sent, throttled, started, finished, seconds, stopped, cost)


def _schedule(
    requests: Sequence[Request],
    outcomes: dict[str, RequestOutcome],
    runner: _Runner,
    concurrency: int,
    progress: Progress,
    state: _State,
) -> None:
    """Run requests on worker threads, each once the requests whose images it takes are done."""
    waiting_on: dict[str, set[str]] = {}
    dependents: dict[str, list[Request]] = defaultdict(list)
    keys = {r.key for r in requests}
    ready: queue.Queue[Request | None] = queue.Queue()
    done: queue.Queue[RequestOutcome] = queue.Queue()
    for request in requests:
        upstream = {i.upstream[0] for i in request.inputs if i.upstream is not None and i.upstream[0] in keys}
        waiting_on[request.key] = upstream
        for key in upstream:
            dependents[key].append(request)
        if not upstream:
            ready.put(request)

    def worker() -> None:
        while True:
            request = ready.get()
            if request is None:
                return
            try:
                outcome = runner.run(request)
            except StoreError as e:  # a full disk: stop making images that could not be kept
                with state.lock:
                    state.fatal = state.fatal or e
                state.stop.set()
                outcome = RequestOutcome(request.key, "failed", reason=str(e))
            except BaseException as e:  # a bug: report it on this request, keep the run going
                outcome = RequestOutcome(
                    request.key, "failed", reason=f"internal error: {type(e).__name__}: {e}\n{traceback.format_exc()}"
                )
            done.put(outcome)

    threads = [
        threading.Thread(target=worker, daemon=True, name=f"campaign-worker-{i}")
        for i in range(max(1, min(concurrency, len(requests))))
    ]
    for t in threads:
        t.start()
    remaining = len(requests)
    abandoned: set[str] = set()
    try:
        while remaining:
            try:
                outcome = done.get(timeout=0.2)
            except queue.Empty:
                continue
            remaining -= 1
            outcomes[outcome.key] = outcome
            progress.advance(outcome)
            for dependent in dependents.pop(outcome.key, []):
                pending = waiting_on[dependent.key]
                pending.discard(outcome.key)
                if outcome.status != "generated":
                    if dependent.key not in abandoned:
                        abandoned.add(dependent.key)
                        status: Status = "skipped" if outcome.status == "skipped" else "failed"
                        done.put(
                            RequestOutcome(
                                dependent.key, status, reason=f"its source request {outcome.key} was {outcome.status}"
                            )
                        )
                elif not pending and dependent.key not in abandoned:
                    ready.put(dependent)
    finally:
        for _ in threads:
            ready.put(None)


class _Runner:
    def __init__(
        self,
        plan: Plan,
        backend_for: Callable[[str], Backend],
        store: Store,
        limiter: Limiter,
        clock: Clock,
        options: RunOptions,
        state: _State,
        locations_for: Callable[[Request], Sequence[str]],
    ) -> None:
        self.plan = plan
        self.backend_for = backend_for
        self.store = store
        self.limiter = limiter
        self.clock = clock
        self.options = options
        self.state = state
        self.locations_for = locations_for
        self.rng = random.Random()
        self.input_cache: dict[str, bytes] = {}
        self.cache_lock = threading.Lock()

    def inputs(self, request: Request) -> list[bytes]:
        out = []
        for item in request.inputs:
            with self.cache_lock:
                cached = self.input_cache.get(item.digest)
            if cached is None:
                if item.file is not None:
                    cached = load_bytes(item.file)
                else:
                    assert item.upstream is not None
                    key, index = item.upstream
                    record = self.store.get(key)
                    images = {i.index: i for i in record.images} if record else {}
                    if index not in images:
                        raise ImageProblem(
                            f"image {index + 1} of source request {key} is not in the store "
                            "(filtered, or the store was trimmed)"
                        )
                    cached = self.store.read(images[index])
                with self.cache_lock:
                    self.input_cache[item.digest] = cached
            out.append(cached)
        return out

    def run(self, request: Request) -> RequestOutcome:
        try:
            inputs = self.inputs(request)
        except ImageProblem as e:
            return RequestOutcome(request.key, "failed", reason=str(e))
        backend = self.backend_for(request.backend)
        locations = list(self.locations_for(request))
        attempts = sent = 0
        while True:
            if self.state.stop.is_set():
                return RequestOutcome(request.key, "skipped", reason="interrupted", attempts=attempts, sent=sent)
            if request.model in self.state.exhausted:
                return RequestOutcome(
                    request.key, "skipped", reason=self.state.exhausted[request.model], attempts=attempts, sent=sent
                )
            bucket = None
            location = "default"
            if getattr(backend, "rate_limited", True):  # local drafts (preview) count against no quota
                location, wait, slot = self.limiter.reserve(request.model, locations)
                bucket = self.limiter.bucket(request.model, location)
                if self.quota_gone(request.model, bucket, throttled=False) or not self.sleep(wait, request.model):
                    continue  # the loop's first checks say why
                bucket.sent(slot)
            sent += 1
            with self.state.lock:
                self.state.sent += 1
            began = self.clock.now()
            try:
                routed = replace(request, location=location) if location != "default" else request
                outcome = backend.generate(routed, inputs)
            except TransientError as e:
                if e.quota and bucket is not None:
                    bucket.throttle(e.retry_after)
                    self.quota_gone(request.model, bucket, throttled=True)
                    continue
                attempts += 1
                if attempts >= self.options.max_attempts:
                    return RequestOutcome(
                        request.key,
                        "failed",
                        reason=f"{e.message} (after {attempts} attempts)",
                        attempts=attempts,
                        sent=sent,
                    )
                self.clock.sleep(self.backoff(attempts, e.retry_after))
                continue
            except PermanentError as e:
                return RequestOutcome(request.key, "failed", reason=e.message, attempts=attempts + 1, sent=sent)
            if bucket is not None:
                bucket.succeeded()
            record = self.store_outcome(request, outcome, inputs, self.clock.now() - began, location, attempts + 1)
            return RequestOutcome(request.key, record.status, record, record.reason, attempts + 1, sent)

    def quota_gone(self, model: str, bucket: Bucket, throttled: bool) -> bool:
        """Whether ``model``'s quota is given up on for this run (and if so, say why in ``state.exhausted``).

        It is when a 429 (``throttled``) comes after ``quota_patience`` seconds without a success, or when the
        service asks to wait longer than that: sleeping through an hour-long Retry-After would look like a hang.
        """
        patience = self.options.quota_patience
        if model in self.state.exhausted:
            return True
        if throttled and self.clock.now() - bucket.last_success > patience:
            why = f"the {model} quota stayed exhausted for {patience:g}s"
        elif bucket.paused_until - self.clock.now() > patience:
            wait = bucket.paused_until - self.clock.now()
            why = f"the {model} quota is exhausted and the service asks to wait {wait:.0f}s, more than {patience:g}s"
        else:
            return False
        self.state.exhausted.setdefault(
            model, f"{why}; its remaining requests were left for later: run the same command again to resume"
        )
        return True

    def sleep(self, seconds: float, model: str) -> bool:
        """Sleep ``seconds`` in short steps; False as soon as the run stops or ``model``'s quota is given up on."""
        end = self.clock.now() + seconds
        while True:
            if self.state.stop.is_set() or model in self.state.exhausted:
                return False
            left = end - self.clock.now()
            if left <= 0:
                return True
            self.clock.sleep(min(left, _SLEEP_STEP))

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.options.backoff_max, self.options.backoff_base * 2 ** (attempt - 1))
        delay = base / 2 + self.rng.uniform(0, base / 2)  # "equal jitter"
        return float(max(delay, retry_after or 0.0))

    def store_outcome(
        self, request: Request, outcome: Outcome, inputs: Sequence[bytes], seconds: float, location: str, attempts: int
    ) -> Record:
        images = []
        blobs = []
        notes: list[list[str]] = []
        for index, generated in enumerate(outcome.images):
            done = finish(request, generated, inputs)
            images.append(self.store.image_ref(index, digest_bytes(done.data), done.mime_type, done.width, done.height))
            blobs.append(done.data)
            notes.append(list(done.notes))
        status = outcome.status if images or outcome.status != "generated" else "filtered"
        reason = outcome.reason
        if status == "generated" and len(images) < request.sample_count and reason is None:
            reason = f"{request.sample_count - len(images)} of {request.sample_count} images were filtered"
        details = dict(outcome.details)
        details.update({"attempts": attempts, "location": None if location == "default" else location})
        if any(notes):
            details["notes"] = notes
        record = Record(
            key=request.key,
            status=status,
            images=tuple(images),
            reason=reason,
            backend=request.backend,
            model=request.model,
            created=self.clock.wall(),
            seconds=seconds,
            request=request.to_json(),
            details=details,
        )
        return self.store.put(record, blobs)
