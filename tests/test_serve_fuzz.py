"""A property-based fuzz of the playground's JSON API against its own OpenAPI schema.

Request bodies are drawn from the JSON schema the app publishes (app.openapi(); ``from_schema``
below covers the part of JSON Schema that FastAPI emits: objects, anyOf, enum, bounded numbers,
strings, booleans, arrays and $ref), and arbitrary JSON for the bodies that break it.  Whatever comes in, the app
answers with a declared kind of status (never 5xx), every error is JSON whose ``detail`` names
its field in at most a few hundred characters, and a schema-valid training request yields a
recipe that loads (the job itself is not started: JobManager.start is replaced by a stub).
Bounded: a fixed number of examples per endpoint and a wall-clock budget (FUZZ_SECONDS) after
which the remaining examples return at once.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from denoiselab import load_config, train  # noqa: E402
from denoiselab.serve.app import create_app  # noqa: E402

FUZZ_SECONDS = 4.0  # per endpoint: the suite's budget is tight
EXAMPLES = 60
# T = 10 keeps every schema-valid sampling request small (steps > T is refused).
TINY = ["train.steps=10", "model.hidden=16", "data.n=200", "schedule.T=10", "schedule.scale_with_T=false", "sample.steps=3", "sample.n=20"]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
FIELD = re.compile(r"^.{1,100}?: ", re.DOTALL)  # "field: message"; an unknown field is named as sent (cut)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def app(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("fuzz-runs")
    train(load_config("quick", TINY), root / "tiny", progress=False, log=lambda *_: None)
    app = create_app(root, job_threads=1, finish_runs=False)
    started = []

    def fake_start(run, cfg, *, data=None):  # no training process: only the recipe is checked
        started.append((run, cfg))
        return {"id": "0" * 12, "run": run, "status": "starting", "active": True}

    app.state.jobs.start = fake_start
    app.state.fuzz_started = started
    return app


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


def from_schema(schema: dict, spec: dict):
    """A strategy for the JSON values ``schema`` accepts (the subset FastAPI's OpenAPI uses)."""
    if "$ref" in schema:
        return from_schema(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], spec)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, spec) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = {k: from_schema(v, spec) for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: v for k, v in props.items() if k in required}, optional={k: v for k, v in props.items() if k not in required}
        )
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        return st.integers(None if lo is None else int(lo), None if hi is None else int(hi))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 80), 80))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), spec), min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 20), 20))
    if kind == "null":
        return st.none()
    return JSON


def body_schema(app, path: str):
    spec = app.openapi()
    return from_schema(spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"], spec)


def check_answer(r, ok_statuses: tuple[int, ...]) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    if r.status_code >= 400:
        assert r.status_code in (400, 404, 409, 415, 422, 429, 503), r.status_code
        detail = body["detail"]
        assert isinstance(detail, str) and len(detail) <= 1000, detail[:300]
        assert FIELD.match(detail), detail[:300]
    else:
        assert r.status_code in ok_statuses, r.status_code


def budget():
    end = time.monotonic() + FUZZ_SECONDS
    return lambda: time.monotonic() > end


@pytest.mark.parametrize(
    "path, ok",
    [("/api/forward", (200,)), ("/api/runs/tiny/sample", (200,)), ("/api/jobs", (202,))],
)
def test_schema_valid_bodies_get_a_clean_answer(app, client, path, ok):
    schema_path = "/api/runs/{name}/sample" if "/sample" in path else path
    over = budget()

    @FUZZ
    @given(body_schema(app, schema_path))
    def run(body):
        if over():
            return
        r = client.post(path, json=body)
        check_answer(r, ok)
        if path == "/api/jobs" and r.status_code == 202:
            run_name, cfg = app.state.fuzz_started[-1]
            assert cfg.train.steps == (body.get("steps") or cfg.train.steps)  # the recipe loaded

    run()


@pytest.mark.parametrize("path", ["/api/forward", "/api/runs/tiny/sample", "/api/jobs", "/api/default-run"])
def test_any_json_body_gets_a_clean_answer(client, path):
    over = budget()

    @FUZZ
    @given(JSON)
    def run(body):
        if over():
            return
        check_answer(client.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"}), (200, 202))

    run()


def test_query_and_path_parameters_get_a_clean_answer(client):
    over = budget()
    text = st.text(st.characters(codec="utf-8"), max_size=30).map(lambda t: quote(t, safe=""))

    @FUZZ
    @given(st.integers(-5, 3000), st.floats(-1, 2, allow_nan=False), st.floats(-1, 2, allow_nan=False), text, st.integers(-3, 10**6))
    def run(T, beta_start, beta_end, name, since):
        if over():
            return
        check_answer(client.get("/api/schedules", params={"T": T, "beta_start": beta_start, "beta_end": beta_end}), (200,))
        if name:
            check_answer(client.get(f"/api/runs/{name}"), (200,))
        check_answer(client.get(f"/api/jobs/{name or 'x'}", params={"since": since}), (200,))

    run()


def test_a_path_no_route_answers_names_its_field(client):
    """A run name with an encoded "/" reaches no route: the 404 still says what is wrong, as every
    error does (the fuzz above found it)."""
    for path in ("/api/runs/%2F0", "/api/no-such-thing"):
        r = client.get(path)
        assert r.status_code == 404
        check_answer(r, ())
        assert r.json()["detail"].startswith("path: no part of the playground's API answers this path")
