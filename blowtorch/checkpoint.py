"""What a checkpoint holds, and putting it back.

A checkpoint is a plain dict of tensors and Python values, so it loads with
``torch.load(path, weights_only=True)``: nobody has to unpickle arbitrary objects. It holds all
that is needed to continue bit-exactly: model, optimizers, schedulers, the random number
generators, the counters, the position inside an epoch, the best metric, config and versions.
Files are written by :mod:`blowtorch.checkpoint_files`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from blowtorch._version import __version__
from blowtorch.checkpoint_files import CheckpointStore
from blowtorch.errors import CheckpointError, TrainingError
from blowtorch.hyperparameters import load_optimizers
from blowtorch.optim import OptimizerSet
from blowtorch.state import EpochPosition, TrainState

FORMAT = "blowtorch-checkpoint"
FORMAT_VERSION = 1


def build_checkpoint(
    *,
    model: torch.nn.Module,
    optimizers: OptimizerSet,
    state: TrainState,
    position: EpochPosition | None,
    rng: dict[str, Any],
    config: dict[str, Any],
    command_line: dict[str, Any],
    sacred_run_id: Any,
) -> dict[str, Any]:
    """Everything needed to continue the run from ``state``: after its epoch, or at ``position`` inside it."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "epoch": state.epoch,
        "metrics": dict(state.last_metrics),  # the last completed epoch's
        **optimizers.state_dict(),  # optimizers, schedulers and the float16 loss scaler
        "state": state.as_dict(),
        "position": None if position is None else position.as_dict(),
        "rng": rng,
        "config": config,
        "command_line": command_line,  # named configs and `with` updates: --resume repeats them
        "sacred_run_id": None if sacred_run_id is None else str(sacred_run_id),
        "versions": {"blowtorch": __version__, "torch": str(torch.__version__)},
    }


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Verify ``path`` against its manifest and load it with ``weights_only=True``."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    CheckpointStore(path.parent).verify(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a blowtorch checkpoint (it has no '{FORMAT}' format marker); resume from a file "
            f"in a run directory's checkpoints/ folder"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer blowtorch ({payload.get('versions', {}).get('blowtorch')}); "
            f"upgrade blowtorch to resume from it"
        )
    return payload


def apply_checkpoint(payload: dict[str, Any], model: torch.nn.Module, optimizers: OptimizerSet, path: Path) -> list[str]:
    """Load model, optimizer and scheduler states, or say exactly what does not fit.

    Returns how the optimizer and scheduler settings changed since the checkpoint (see
    :mod:`blowtorch.hyperparameters`: the new settings win); empty when the run continues bit-exactly.
    """
    _check_model_fits(payload["model"], model, path)
    model.load_state_dict(payload["model"])
    for kind, saved, current in (
        ("optimizers", payload["optimizers"], optimizers.optimizers),
        ("schedulers", payload["schedulers"], optimizers.schedules),
    ):
        if set(saved) != set(current):
            raise CheckpointError(
                f"{path} holds {len(saved)} {kind} {sorted(saved)}, but configure_optimizers returned "
                f"{len(current)} {sorted(current)}; return the same {kind}, with the same names, as the run that "
                f"wrote the checkpoint"
            )
    try:
        changes = load_optimizers(optimizers, payload["optimizers"], payload["schedulers"])
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"{path}: the optimizer and scheduler states do not fit those configure_optimizers returned: {error}"
        ) from error
    return changes + _load_scaler(payload.get("scaler"), optimizers.rule.scaler)


def _load_scaler(saved: dict[str, Any] | None, scaler: torch.amp.GradScaler | None) -> list[str]:
    """The float16 loss scaler continues where it was; a change of precision is reported, not refused."""
    if scaler is not None and saved is not None:
        scaler.load_state_dict(saved)
    elif scaler is not None:
        return [f"precision: the checkpoint was not trained with precision='16'; a new loss scaler starts at {scaler.get_scale():g}"]
    elif saved is not None:
        return ["precision: the checkpoint's float16 loss scaler is dropped: this run does not train with precision='16'"]
    return []


def _check_model_fits(saved: dict[str, torch.Tensor], model: torch.nn.Module, path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(saved[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in saved and tuple(saved[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"{label} ({len(items)}): {', '.join(items[:10])}{' ...' if len(items) > 10 else ''}"
            for label, items in (
                ("missing in the checkpoint", missing),
                ("unexpected in the checkpoint", unexpected),
                ("different shapes", mismatched),
            )
            if items
        ]
        raise CheckpointError(
            f"{path} does not fit this model; " + "; ".join(parts) + ". Build the model with the configuration of the "
            "run that wrote the checkpoint (its config is in the run directory's config.yaml)"
        )


def check_finite_parameters(model: torch.nn.Module, epoch: int) -> None:
    """Refuse to checkpoint a model whose parameters are NaN or infinite (one device read).

    Each parameter's minimum and maximum, in one pass without a temporary the size of the
    parameter: NaN propagates into both, +inf and -inf show in one of them. About 8x faster than
    ``isfinite(p).all()`` on a 25 MB model."""
    parameters = [p.detach() for p in model.parameters() if p.is_floating_point() and p.numel() > 0]
    if not parameters:
        return
    extremes = [extreme.to(torch.float32) for p in parameters for extreme in torch.aminmax(p)]  # float32: one stack for every dtype
    if not bool(torch.isfinite(torch.stack(extremes)).all()):
        bad = [name for name, p in model.named_parameters() if p.is_floating_point() and not torch.isfinite(p).all()]
        raise TrainingError(
            f"in epoch {epoch} the model parameters {bad[:5]}{' ...' if len(bad) > 5 else ''} became NaN or inf; "
            f"no checkpoint was written. Lower the learning rate or clip gradients (gradient_clip_val=...)"
        )
