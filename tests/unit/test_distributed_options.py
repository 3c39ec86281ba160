"""The ddp options that are checked when ``Run()`` is constructed, before any process group exists."""

import pytest

from blowtorch import OptionError, Run
from blowtorch.distributed import check_ddp_options, process_group_backend


@pytest.mark.parametrize("good", [None, "gloo", "nccl", "mpi", "cpu:gloo,cuda:nccl"])
def test_backend_names_torch_knows_are_accepted(good):
    check_ddp_options(good, 1800)


@pytest.mark.parametrize("bad", ["ncl", "", "cpu:glo", 1])
def test_a_misspelled_backend_is_named_with_the_ones_there_are(bad):
    with pytest.raises(OptionError, match=r"ddp_backend must be a torch.distributed backend \(gloo, nccl, .*got"):
        check_ddp_options(bad, 1800)


def test_a_backend_error_comes_from_run_construction():
    with pytest.raises(OptionError, match="got 'ncl'"):
        Run(argv="train.py", ddp_backend="ncl")


def test_nccl_gets_gloo_beside_it_for_blowtorchs_small_cpu_collectives():
    assert process_group_backend("nccl") == "cpu:gloo,cuda:nccl"
    assert process_group_backend("gloo") == "gloo"
    assert process_group_backend("cpu:gloo,cuda:ucc") == "cpu:gloo,cuda:ucc"


@pytest.mark.parametrize("bad", [0, -1, "30", float("inf"), True])
def test_ddp_timeout_must_be_positive_seconds(bad):
    with pytest.raises(OptionError, match=r"ddp_timeout must be a positive number of seconds \(default 1800\), got"):
        Run(argv="train.py", ddp_timeout=bad)
