"""The thread count of train.threads = 0 is fixed by the kind of network (one thread for point
networks, torch's default for images), and an explicit train.threads wins."""

from __future__ import annotations

import torch

from denoiselab.config import load_config
from denoiselab.training import auto_threads, set_up_compute


def test_point_networks_get_one_thread_and_images_keep_torchs_default():
    assert auto_threads(load_config("spiral")) == 1
    assert auto_threads(load_config("quick", ["model.arch=simple-mlp"])) == 1
    assert auto_threads(load_config("digits")) is None


def test_the_thread_count_is_set_for_a_cpu_run_and_an_explicit_one_wins():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        set_up_compute(load_config("quick", ["train.device=cpu"]), print)
        assert torch.get_num_threads() == 1
        set_up_compute(load_config("quick", ["train.device=cpu", "train.threads=2"]), print)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
