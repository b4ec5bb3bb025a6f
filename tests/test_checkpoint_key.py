"""The dense-checkpoint cache key: a change that changes the trained floats changes the file."""

from dataclasses import replace

from weightless.training import TrainConfig
from weightless.training.threads import set_threads
from weightless_lab.apps.checkpoint import checkpoint_path


def test_thread_count_is_part_of_the_checkpoint_key():
    cfg = TrainConfig(epochs=1)
    one = checkpoint_path("c", "lenet5", 0, replace(cfg, threads=1), 100)
    two = checkpoint_path("c", "lenet5", 0, replace(cfg, threads=2), 100)
    assert one != two
    assert checkpoint_path("c", "lenet5", 0, replace(cfg, progress=False), 100) == checkpoint_path("c", "lenet5", 0, cfg, 100)


def test_default_threads_key_follows_the_current_default():
    import torch

    before = torch.get_num_threads()
    cfg = TrainConfig(epochs=1)
    try:
        set_threads(1)
        assert checkpoint_path("c", "m", 0, cfg, 10) == checkpoint_path("c", "m", 0, replace(cfg, threads=1), 10)
        set_threads(2)
        assert checkpoint_path("c", "m", 0, cfg, 10) == checkpoint_path("c", "m", 0, replace(cfg, threads=2), 10)
    finally:
        set_threads(None)
        torch.set_num_threads(before)


def test_cpu_capability_is_part_of_the_checkpoint_key(monkeypatch):
    """AVX2 and AVX-512 kernels train different floats: a cache moved between such machines
    must not hand one machine's model to the other."""
    import torch

    cfg = TrainConfig(epochs=1)
    here = checkpoint_path("c", "lenet5", 0, cfg, 100)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "SOMETHING_ELSE")
    assert checkpoint_path("c", "lenet5", 0, cfg, 100) != here
