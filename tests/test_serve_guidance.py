"""The sample request's gradient_guidance block (serve/guided_sampling.py): classifier guidance,
inpainting a held-out image, observed coordinates; the guidance term of every frame; the counts;
and the one-line 422s naming the field."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from denoiselab import load_config, train
from denoiselab.training import train_classifier
from denoiselab.classifiers import ClassifierSettings
from denoiselab.runs.classifier import load_classifier
from denoiselab.runs import load_run
from denoiselab.serve.app import create_app
from denoiselab.serve.limits import MAX_BOXES, MAX_MASK_B64
from denoiselab.serve.payloads import decode_panel

POINTS = ["train.steps=10", "model.hidden=16", "data.n=200", "schedule.T=100", "sample.steps=5", "sample.n=50"]
DIGITS = ["train.steps=5", "model.hidden=8", "model.time_dim=16", "sample.n=8", "sample.steps=4"]


def _quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("guided-serve")
    labelled = [*POINTS, 'data.classes=["spiral", "circle"]', "train.label_dropout=1"]
    train(load_config("quick", labelled), root / "classes", progress=False, log=_quiet)
    train_classifier(root / "classes", ClassifierSettings(steps=5, batch_size=32, hidden=16), progress=False, log=_quiet)
    train(load_config("quick", labelled), root / "no-classifier", progress=False, log=_quiet)
    train(load_config("quick", POINTS), root / "plain", progress=False, log=_quiet)
    train(load_config("digits", DIGITS), root / "digits", progress=False, log=_quiet)
    return root


@pytest.fixture(scope="module")
def client(runs_root):
    with TestClient(create_app(runs_root, job_threads=1, finish_runs=False)) as c:
        yield c


def _sample(client, run: str, **body):
    return client.post(f"/api/runs/{run}/sample", json={"steps": 4, "sampler": "ddim", **body})


def _frames(reply: dict, key: str) -> list[np.ndarray]:
    return [decode_panel(f[key]) for f in reply["frames"]]


def _error(response, status: int = 422) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert "\n" not in detail
    return detail


def test_classifier_guidance_at_scale_zero_is_the_unguided_model_exactly(client):
    plain = _sample(client, "classes", n=20, guidance=0.0, label=1)  # classifier-free scale 0: unconditional
    zero = _sample(client, "classes", n=20, gradient_guidance={"classifier": {"label": 1, "scale": 0.0}})
    assert plain.status_code == 200 and zero.status_code == 200, zero.text
    a, b = plain.json(), zero.json()
    assert a["samples"] == b["samples"]
    for key in ("x_t", "eps", "x0", "x_next"):
        for x, y in zip(_frames(a, key), _frames(b, key)):
            np.testing.assert_array_equal(x, y)
    assert all(np.all(term == 0) for term in _frames(b, "guidance_term"))
    assert b["gradient_guidance"]["kind"] == "classifier" and b["gradient_guidance"]["label"] == 1
    assert b["label_name"] == "circle" and set(b["labels"]) == {"circle"}  # every sample is guided to that class


def test_classifier_guidance_reports_its_term_and_counts(client, runs_root):
    reply = _sample(client, "classes", n=20, gradient_guidance={"classifier": {"label": "circle", "scale": 5.0}}).json()
    g = reply["gradient_guidance"]
    # ddim: one model evaluation and one classifier gradient per step, no backward through the model
    assert (g["evaluations"], g["other_gradients"], g["backward_passes"], g["display_evaluations"]) == (4, 4, 0, 0)
    terms = _frames(reply, "guidance_term")
    assert len(terms) == 4 and terms[0].shape == (20, 2)
    assert all(np.abs(t).max() > 0 for t in terms)
    # The first step's term is -s sigma_t grad log p(y | x_T) by the run's classifier itself.
    run = load_run(runs_root / "classes")
    x = torch.tensor(decode_panel(reply["x_T"]), dtype=torch.float32, requires_grad=True)
    t = torch.full((20,), reply["frames"][0]["t"])
    log_p = torch.log_softmax(load_classifier(run)(x, t), dim=-1)[:, 1].sum()
    (grad,) = torch.autograd.grad(log_p, x)
    expected = -5.0 * float(run.schedule.sigma_at(reply["frames"][0]["t"])) * grad.numpy()
    np.testing.assert_allclose(terms[0], expected, rtol=2e-2, atol=2e-3)


def test_the_reply_says_what_steered_the_samples(client):
    """The reply's description is the command line's wording (plan.describe_draw): classifier
    guidance names its class and scale and no classifier-free scale (the model runs
    unconditional, so guidance_used is null); without it the class and the classifier-free scale."""
    guided = _sample(client, "classes", n=10, gradient_guidance={"classifier": {"label": "circle", "scale": 5.0}}).json()
    assert guided["description"] == "ddim, 4 steps, logsnr grid, eta 0; classifier guidance towards class circle, scale 5"
    assert guided["guidance_used"] is None
    free = _sample(client, "classes", n=10, label="circle", guidance=3.0).json()
    assert free["description"] == "ddim, 4 steps, logsnr grid, eta 0; class circle, classifier-free guidance 3" and free["guidance_used"] == 3.0
    observed = _sample(client, "plain", n=10, gradient_guidance={"observe": {"values": {"x1": 0.5}, "method": "dps"}}).json()
    assert observed["description"].endswith("; observed x1 = 0.5 by DPS, scale 3")
    filled = _sample(client, "digits", n=2, gradient_guidance={"inpaint": {"image": 1, "boxes": [[0, 0, 4, 8]], "method": "replace"}}).json()
    assert filled["description"].endswith("; held-out image 1 completed by replacement (RePaint-style)")


def test_classifier_guidance_without_a_classifier_names_the_field(client):
    body = {"gradient_guidance": {"classifier": {"label": 0, "scale": 1.0}}}
    assert _error(_sample(client, "no-classifier", **body)).startswith("gradient_guidance.classifier: ")
    assert "train-classifier" in _error(_sample(client, "no-classifier", **body))
    assert "no classes" in _error(_sample(client, "plain", **body))
    assert _error(_sample(client, "classes", gradient_guidance={"classifier": {"label": 7, "scale": 1.0}})).startswith("gradient_guidance.classifier: ")


@pytest.mark.parametrize("method", ["replace", "dps"])
def test_inpainting_keeps_the_known_pixels_in_the_final_frame(client, method):
    reply = _sample(client, "digits", n=3, gradient_guidance={"inpaint": {"image": 2, "boxes": [[4, 0, 8, 8]], "method": method}})
    assert reply.status_code == 200, reply.text
    reply = reply.json()
    g = reply["gradient_guidance"]
    known = decode_panel(g["known_image"])[0]  # (C, H, W)
    mask = decode_panel(g["known_mask"])[0, 0] > 0.5
    assert mask[:, :4].all() and not mask[:, 4:].any()
    final = _frames(reply, "x_next")[-1]
    samples = decode_panel(reply["samples"])
    for x in (final, samples):
        np.testing.assert_allclose(x[:, :, mask], np.broadcast_to(known[:, mask], x[:, :, mask].shape), atol=1e-3)
    assert not np.allclose(samples[0][:, ~mask], samples[1][:, ~mask])  # the rest is sampled
    terms = _frames(reply, "guidance_term")
    assert terms[0].shape == (3, 1, 8, 8) and np.abs(terms[0]).max() > 0
    if method == "dps":
        assert (g["evaluations"], g["backward_passes"], g["display_evaluations"]) == (4, 4, 0)
    else:  # replacement shows the model re-noised known pixels: one more plain call per step for the panel
        assert (g["evaluations"], g["backward_passes"], g["display_evaluations"]) == (4, 0, 4)


def test_inpainting_by_bitmask_equals_the_same_boxes(client):
    mask = np.ones((8, 8), dtype=np.uint8)
    mask[2:6, 1:7] = 0
    bits = base64.b64encode(np.packbits(mask.reshape(-1)).tobytes()).decode()
    a = _sample(client, "digits", n=2, gradient_guidance={"inpaint": {"image": 0, "bitmask": bits}}).json()
    b = _sample(client, "digits", n=2, gradient_guidance={"inpaint": {"image": 0, "boxes": [[1, 2, 7, 6]]}}).json()
    assert a["samples"] == b["samples"]


@pytest.mark.parametrize(
    "inpaint, field",
    [
        ({"bitmask": "not base64!"}, "gradient_guidance.inpaint.bitmask"),
        ({"bitmask": base64.b64encode(b"\xff" * 9).decode()}, "gradient_guidance.inpaint.bitmask"),  # 8 x 8 needs 8 bytes
        ({"bitmask": "A" * (MAX_MASK_B64 + 4)}, "gradient_guidance.inpaint.bitmask"),
        ({"boxes": [[0, 0, 9, 4]]}, "gradient_guidance.inpaint.boxes.0"),  # outside the 8 x 8 image
        ({"boxes": [[3, 3, 2, 4]]}, "gradient_guidance.inpaint.boxes.0"),
        ({"boxes": [[0, 0, 1, 1]] * (MAX_BOXES + 1)}, "gradient_guidance.inpaint.boxes"),
        ({"boxes": [[0, 0, 8, 8]]}, "gradient_guidance.inpaint"),  # nothing known
        ({"boxes": [[0, 0, 1, 1]], "image": 10**6}, "gradient_guidance.inpaint.image"),
        ({"boxes": [[0, 0, 1, 1]], "bitmask": "AAAA"}, "gradient_guidance.inpaint"),
        ({"boxes": [[0, 0, 1, 1]], "method": "magic"}, "gradient_guidance.inpaint.method"),
    ],
)
def test_a_bad_mask_gets_one_line_naming_the_field(client, inpaint, field):
    assert _error(_sample(client, "digits", n=2, gradient_guidance={"inpaint": inpaint})).startswith(field)


def test_observed_coordinates_of_a_point_run(client):
    reply = _sample(client, "plain", n=30, gradient_guidance={"observe": {"values": {"x1": 0.5}, "method": "dps"}}).json()
    g = reply["gradient_guidance"]
    assert g["known_values"] == {"x1": 0.5} and g["backward_passes"] == 4
    samples = decode_panel(reply["samples"])
    norm = client.get("/api/runs/plain").json()
    assert np.ptp(samples[:, 0]) == 0 and np.ptp(samples[:, 1]) > 0
    assert norm["has_classifier"] is False
    replaced = _sample(client, "plain", n=30, gradient_guidance={"observe": {"values": {"x2": -0.25}, "method": "replace"}}).json()
    g = replaced["gradient_guidance"]
    assert (g["evaluations"], g["backward_passes"], g["display_evaluations"]) == (4, 0, 4)
    assert np.ptp(decode_panel(replaced["samples"])[:, 1]) == 0 and g["paste_max_change"] < 1e-5  # replacement lands on it
    assert _error(_sample(client, "plain", gradient_guidance={"observe": {"values": {"x3": 0.5}}})).startswith("gradient_guidance.observe.values")
    assert _error(_sample(client, "digits", gradient_guidance={"observe": {"values": {"x1": 0.5}}})).startswith("gradient_guidance.observe")
    assert _error(_sample(client, "plain", gradient_guidance={"inpaint": {"boxes": [[0, 0, 1, 1]]}})).startswith("gradient_guidance.inpaint")
    assert _error(_sample(client, "plain", gradient_guidance={})).startswith("gradient_guidance")


def test_run_details_offer_the_classifier_and_the_held_out_images(client):
    assert client.get("/api/runs/classes").json()["has_classifier"] is True
    digits = client.get("/api/runs/digits").json()
    assert digits["held_out_count"] > 0 and decode_panel(digits["held_out_preview"]).shape[1:] == (1, 8, 8)


def test_gradient_guidance_is_held_to_the_frame_bounds_without_frames(client):
    # n x steps = 400 000 point evaluations: allowed unguided without frames, too much with a backward pass each
    body = {"n": 4000, "steps": 100, "frames": False}
    assert _sample(client, "classes", **{**body, "steps": 5}, gradient_guidance={"classifier": {"label": 0, "scale": 1.0}}).status_code == 200
    assert _error(_sample(client, "plain", **body, gradient_guidance={"observe": {"values": {"x2": 0.0}}})).startswith("n: ")
    both = _sample(client, "classes", label=0, gradient_guidance={"classifier": {"label": 1, "scale": 1.0}})
    assert _error(both).startswith("gradient_guidance.classifier.label: ")
