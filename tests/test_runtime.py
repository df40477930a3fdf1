import random

import numpy as np
import pytest
import torch

from attn_lesson import env_report, get_device, get_profile, seed_everything
from attn_lesson.runtime import PROFILE_ENV, Profile


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)


@pytest.mark.parametrize("name, expected", [("cpu", "cpu"), ("gpu", "gpu"), (" GPU ", "gpu"), ("Cpu", "cpu")])
def test_get_profile_by_name(no_env, name, expected):
    assert get_profile(name).name == expected


def test_profile_pick():
    assert Profile("cpu").pick(cpu=1, gpu=2) == 1
    assert Profile("gpu").pick(cpu=1, gpu=2) == 2


def test_default_profile_follows_cuda(no_env):
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("value", ["gpu", "cpu", " CPU"])
def test_env_override(monkeypatch, value):
    monkeypatch.setenv(PROFILE_ENV, value)
    assert get_profile().name == value.strip().lower()


def test_argument_beats_env(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "gpu")
    assert get_profile("cpu").name == "cpu"


def test_empty_env_is_ignored(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "")
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_lists_allowed(no_env):
    with pytest.raises(ValueError, match="'tpu'") as exc:
        get_profile("tpu")
    assert "'cpu'" in str(exc.value) and "'gpu'" in str(exc.value)


def test_unknown_profile_from_env_names_variable(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "fast")
    with pytest.raises(ValueError, match=PROFILE_ENV) as exc:
        get_profile()
    assert "'fast'" in str(exc.value) and "'cpu'" in str(exc.value) and "'gpu'" in str(exc.value)


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_seed_everything_rejects_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(seed)


def test_seed_everything_repeats_random_streams():
    g1 = seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g1))
    g2 = seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(3, generator=g2))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])
    seed_everything(124)
    assert not torch.equal(torch.rand(3), a[2])


def test_env_report_mentions_torch_and_profile(no_env):
    line = env_report(Profile("cpu"))
    assert "torch" in line and torch.__version__ in line
    assert "profile cpu" in line
    assert "profile gpu" in env_report(Profile("gpu"))


def test_get_device():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="'tpu'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")
