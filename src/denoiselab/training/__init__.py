"""Training: one loop (loop.py: signals, progress, checkpoint cadence, stopping) used by the
denoiser and the autoencoder of a latent run (denoiser.py, stages.py) and a run's
noise-conditional classifier (classifier.py); one optimiser step (step.py), the state and its
checkpoint (checkpoint.py), EMA weights (ema.py), the device and thread count (compute.py).

It writes run folders through runs.folder.RunFolder and completes them with runs.complete; the
runs package never imports it.
"""

from .checkpoint import CheckpointError, TrainState, init_state, load_checkpoint, save_checkpoint
from .classifier import check_classifiable, train_classifier
from .compute import auto_threads, busy_cores, set_up_compute
from .denoiser import TrainingData, load_training_data, train
from .ema import EMA
from .loop import StopSignals, TrainingInterrupted, fit
from .step import learning_rate, optimiser_step

__all__ = [
    "EMA",
    "CheckpointError",
    "StopSignals",
    "TrainState",
    "TrainingData",
    "TrainingInterrupted",
    "auto_threads",
    "busy_cores",
    "check_classifiable",
    "fit",
    "init_state",
    "learning_rate",
    "load_checkpoint",
    "load_training_data",
    "optimiser_step",
    "save_checkpoint",
    "set_up_compute",
    "train",
    "train_classifier",
]
