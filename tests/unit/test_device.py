import logging
import warnings
from collections import namedtuple
from dataclasses import dataclass

import pytest
import torch

from blowtorch import OptionError
from blowtorch.device import batch_size_of, move_to_device, select_device
from blowtorch.distributed import Distributed

Pair = namedtuple("Pair", "x y")


@dataclass
class Batch:
    x: torch.Tensor
    label: str


def test_cpu_when_asked():
    assert select_device(use_gpu=False, gpu_id=0) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without CUDA")
def test_use_gpu_without_cuda_falls_back_to_cpu_with_one_info_line(caplog):
    # use_gpu=True is the default: every run on a laptop goes through here, so no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.INFO, logger="blowtorch"):
            assert select_device(use_gpu=True, gpu_id=0) == torch.device("cpu")
    assert [(r.name, r.levelname) for r in caplog.records] == [("blowtorch", "INFO")]
    assert "CUDA is not available on this machine: training on the CPU" in caplog.records[0].getMessage()


def test_gpu_id_that_does_not_exist_names_the_devices_there_are(monkeypatch):
    # No GPU on the test machines: pretend two exist to check the message and the index check.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"Card {i}")
    assert select_device(use_gpu=True, gpu_id=1) == torch.device("cuda", 1)
    with pytest.raises(OptionError, match=r"gpu_id=2 does not exist; the CUDA devices on this machine are: 0 \(Card 0\), 1 \(Card 1\)"):
        select_device(use_gpu=True, gpu_id=2)


def test_under_torchrun_each_process_takes_the_gpu_of_its_local_rank(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with caplog.at_level(logging.INFO, logger="blowtorch"):
        assert select_device(use_gpu=True, gpu_id=1, distributed=Distributed(rank=3, world_size=4, local_rank=1)) == torch.device("cuda", 1)
        assert select_device(use_gpu=True, gpu_id=1, distributed=Distributed(rank=0, world_size=4, local_rank=0)) == torch.device("cuda", 0)
    assert caplog.messages == ["under torchrun each process trains on cuda:LOCAL_RANK; gpu_id=1 is not used"]  # rank 0 says it
    assert select_device(use_gpu=False, gpu_id=0, distributed=Distributed(rank=2, world_size=4, local_rank=2)) == torch.device("cpu")
    with pytest.raises(OptionError, match=r"LOCAL_RANK 2, but this machine has 2 CUDA device\(s\).*--nproc-per-node 2"):
        select_device(use_gpu=True, gpu_id=0, distributed=Distributed(rank=2, world_size=4, local_rank=2))


@pytest.mark.parametrize("bad", [-1, 1.0, "0", True])
def test_gpu_id_must_be_a_non_negative_int(bad):
    with pytest.raises(OptionError, match="gpu_id must be a non-negative int"):
        select_device(use_gpu=False, gpu_id=bad)


def test_move_to_device_keeps_the_structure():
    batch = {"pair": Pair(torch.zeros(2), [torch.ones(3), "text"]), "batch": Batch(torch.zeros(1), "a"), "n": 3}
    moved = move_to_device(batch, torch.device("cpu"))
    assert isinstance(moved["pair"], Pair) and moved["pair"].y[1] == "text"
    assert isinstance(moved["batch"], Batch) and moved["batch"].label == "a"
    assert moved["n"] == 3
    assert torch.equal(moved["pair"].y[0], torch.ones(3))
    # to another device (meta works without a GPU): every tensor moves, the structure stays
    on_meta = move_to_device(batch, torch.device("meta"))
    assert on_meta["pair"].x.device.type == "meta" and on_meta["pair"].y[0].device.type == "meta"
    assert on_meta["batch"].x.device.type == "meta" and on_meta["pair"].y[1] == "text" and on_meta["n"] == 3
    assert batch["pair"].x.device.type == "cpu"  # the input is left as it was


def test_batch_size_is_the_first_dimension_of_the_first_tensor():
    assert batch_size_of((torch.zeros(5, 3), torch.zeros(5))) == 5
    assert batch_size_of({"meta": ["a"], "x": torch.zeros(7, 2)}) == 7
    assert batch_size_of(Batch(torch.zeros(4, 1), "a")) == 4
    assert batch_size_of(["no", "tensors"]) == 1
    assert batch_size_of(torch.tensor(3.0)) == 1
