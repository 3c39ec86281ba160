"""A misspelled keyword of ``Run(...)`` or ``run(...)`` names the keywords it was probably meant to be,
before a run directory or a sacred record exists."""

from pathlib import Path

import pytest
import torch

from blowtorch import Run, UsageError


def test_a_misspelled_run_keyword_names_the_closest_ones_before_anything_is_recorded(tmp_path):
    run = Run(argv="train.py", random_seed=1)
    run.train_step(lambda batch, model: model(batch).sum())
    run.configure_optimizers(lambda model: torch.optim.SGD(model.parameters(), lr=0.1))
    expected = r"run\(\.\.\.\) got an unexpected keyword argument 'max_epoch' \(did you mean 'max_epochs'\?\). It takes: model, "
    with pytest.raises(UsageError, match=expected):
        run(torch.nn.Linear(2, 1), [torch.randn(4, 2)], max_epoch=2, save_path=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no run directory, no sacred storage


def test_it_is_a_type_error_too_and_names_every_unknown_keyword():
    expected = r"Run\(\.\.\.\) got an unexpected keyword arguments 'random_sed' \(did you mean 'random_seed'\?\), 'zzz'\. It takes: "
    with pytest.raises(TypeError, match=expected):
        Run(argv="train.py", random_sed=1, zzz=2)


def test_the_run_is_still_attributed_to_the_script_that_makes_it():
    run = Run(argv="train.py")
    assert Path(run._bridge.base_dir) == Path(__file__).resolve().parent  # sacred's sources are looked for here
