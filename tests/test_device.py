"""One precision rule for every pipeline: named precisions run as named or are refused; only auto chooses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.device import autocast, resolve_precision
from syncanim.errors import ConfigError

CPU = torch.device("cpu")


def test_auto_is_fp32_on_cpu():
    assert resolve_precision(CPU, "auto") == "fp32"


@pytest.mark.parametrize("name", ["fp32", "bf16"])
def test_named_precisions_the_cpu_can_do_are_kept(name):
    assert resolve_precision(CPU, name) == name


def test_fp16_on_cpu_and_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match="fp16 is not supported on CPU"):
        resolve_precision(CPU, "fp16")
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_precision(CPU, "fp8")


def test_autocast_runs_what_was_resolved():
    with autocast(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, "bf16"):
        x = torch.ones(2, 2) @ torch.ones(2, 2)
    assert x.dtype == torch.bfloat16  # no silent fall-back to fp32
    with pytest.raises(ValueError, match="resolved precision"):
        autocast(CPU, "auto")


@pytest.mark.gpu
def test_auto_on_cuda_is_bf16_where_supported():
    dev = torch.device("cuda")
    assert resolve_precision(dev, "auto") == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert resolve_precision(dev, "fp16") == "fp16"
    with autocast(dev, "fp16"):
        x = torch.ones(2, 2, device=dev) @ torch.ones(2, 2, device=dev)
    assert x.dtype == torch.float16


def test_host_copies_are_read_again_only_after_a_change():
    from syncanim.device import HostCopies

    t = torch.zeros(3)
    copies = HostCopies()
    first = copies.of(t)[0]
    assert copies.of(t)[0] is first  # unchanged: the same arrays, no read-back
    t.add_(1.0)
    again = copies.of(t)[0]
    assert again is not first and again.tolist() == [1.0, 1.0, 1.0]


def test_host_arrays_reach_the_device_with_their_values():
    from syncanim.device import to_device

    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = to_device(a, "cpu", torch.float32)
    assert t.dtype == torch.float32 and t.tolist() == a.tolist()
    assert to_device(a[:, ::2], "cpu").tolist() == a[:, ::2].tolist()  # not contiguous


@pytest.mark.gpu
def test_host_arrays_reach_the_device_without_waiting_for_it():
    from syncanim.device import to_device

    dev = torch.device("cuda")
    big = torch.randn(4096, 4096, device=dev)
    a = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    torch.cuda.set_sync_debug_mode("error")  # a copy that waits for the device raises
    try:
        for _ in range(3):
            big = big @ big / 64  # queued work the copy does not wait for
            t = to_device(a, dev)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert np.array_equal(t.cpu().numpy(), a)
