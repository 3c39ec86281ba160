"""``Run``: the object a training script talks to. Config access, decorators, and ``run(...)``.

No training logic lives here: sacred matters go to ``sacred_bridge``, the options to ``options``,
the run's life cycle to ``job``, what happens before the first step to ``setup``, and the loop to
``loop``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from blowtorch.config import ConfigDict, PathLike, load_config_files
from blowtorch.distributed import check_ddp_options, join_process_group
from blowtorch.errors import ConfigError, OptionError
from blowtorch.hooks import HookRegistry
from blowtorch.interrupt import Interrupted
from blowtorch.job import TrainingJob
from blowtorch.keywords import checked_keywords
from blowtorch.loggers.base import BaseLogger
from blowtorch.loggers.fanout import check_loggers
from blowtorch.loggers.progress import Progress
from blowtorch.options import RunOptions
from blowtorch.resume import ResumePoint, find_resume_point
from blowtorch.run_lock import RunDirectoryLock
from blowtorch.run_status import AUTO, find_unfinished_run
from blowtorch.rundir import check_save_path, safe_run_name
from blowtorch.setup import TrainingInputs, prepare

if TYPE_CHECKING:
    from sacred import Experiment
    from sacred.observers import RunObserver

    from blowtorch.sacred_bridge.experiment import SacredBridge

F = TypeVar("F", bound=Callable[..., Any])


class Run:
    """A training run: configuration through sacred, then ``run(model, train_loader, val_loader)``.

    Args:
        config_files: YAML files merged in order (later files win, nested mappings are merged).
        random_seed: the default of sacred's ``seed`` entry; ``with seed=N`` on the command line
            overrides it. Python, numpy and torch are seeded right here, before the model exists.
        name: the experiment name; defaults to the script's file name (required in notebooks).
        argv: the command line to parse, program name first, e.g. ``["train.py", "with", "lr=0.1"]`` or
            ``"train.py with lr=0.1"``; ``[]`` is none. Default: ``sys.argv``, but none in a notebook or REPL
            (the kernel's arguments are not the experiment's). With ``sys.argv``, an error inside
            ``run(...)`` exits with 1 showing only the script's frames, as sacred's command line does
            (``-d``: the full traceback); otherwise the error is raised.
        observers: extra sacred observers (any ``sacred.observers.RunObserver``).
        save_git_info: let sacred record the git commit of the script (needs ``git``).
        mongo_uri: also record the run in MongoDB at this URI (auth, TLS, ``retryWrites=false``, ...);
            the command line's ``--mongo_uri`` does the same.
        mongo_db_name: the database for ``mongo_uri``; default: the URI's path, else ``sacred``.
        mongo_timeout: seconds to wait for a MongoDB server (``-m`` and ``mongo_uri``) before
            training starts, and per operation during the run.
        loggers: loggers for every run of this ``Run``, before those given to ``run(..., loggers=...)``.
        ddp_backend: under torchrun, the process group's backend (default: gloo for CPU tensors,
            NCCL for CUDA tensors); the group is joined here, before the model is built.
        ddp_timeout: seconds a collective may wait for the other processes before the run fails.
    """

    @checked_keywords("Run(...)")
    def __init__(
        self,
        config_files: Sequence[PathLike] | None = None,
        random_seed: int | None = None,
        *,
        name: str | None = None,
        argv: Sequence[str] | str | None = None,
        observers: Sequence[RunObserver] = (),
        save_git_info: bool = True,
        mongo_uri: str | None = None,
        mongo_db_name: str | None = None,
        mongo_timeout: float = 5.0,
        loggers: Sequence[BaseLogger] = (),
        ddp_backend: str | None = None,
        ddp_timeout: float = 1800.0,
    ) -> None:
        caller_globals = sys._getframe(2).f_globals  # the user's script, to which sacred attributes the run (1: checked_keywords)
        self._loggers = check_loggers(loggers, "Run(loggers=...)")
        self._hooks = HookRegistry()
        self._config_functions: list[Callable[..., Any]] = []  # config scopes and named configs, for source.txt
        check_ddp_options(ddp_backend, ddp_timeout)
        self._distributed = join_process_group(ddp_backend, ddp_timeout)
        # sacred (with pkg_resources) is imported here, not by `import blowtorch`: it is the larger part
        # of blowtorch's import time, and only a Run needs it.
        from blowtorch.sacred_bridge.experiment import SacredBridge

        self._bridge: SacredBridge = SacredBridge(
            caller_globals,
            distributed=self._distributed,
            name=name,
            argv=argv,
            observers=observers,
            save_git_info=save_git_info,
            mongo_uri=mongo_uri,
            mongo_db_name=mongo_db_name,
            mongo_timeout=mongo_timeout,
        )
        # `--resume PATH` on the command line: the run's own command line is repeated (see configure).
        cli_resume = self._bridge.resume_path
        self._resume_point = find_resume_point(cli_resume) if cli_resume and cli_resume != AUTO else None
        self._bridge.configure(
            load_config_files(config_files),
            random_seed,
            self._resume_point.checkpoint if self._resume_point is not None else None,
        )
        self._config: ConfigDict | None = None
        self._job: TrainingJob | None = None

    @property
    def run_dir(self) -> Path | None:
        """The run directory of ``run(...)``, from the moment it exists (hooks can write into it)."""
        if self._job is None or self._job.run_dir is None:
            return None
        return self._job.run_dir.path

    # ---- configuration ---------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        """``run["model"]["num_layers"]`` or ``run["model.num_layers"]``; resolves the config on first use."""
        return self.get_config().lookup(key)

    def __setitem__(self, key: str, value: Any) -> None:
        """The config is read-only: ``run["a.b"] = 1`` fails like ``run["a"]["b"] = 1`` (a ``ConfigError``)."""
        self.get_config()[key] = value

    def __contains__(self, key: str) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def get_config(self) -> ConfigDict:
        """The resolved, read-only config: files < ``@run.config`` < named configs < ``with``, plus ``seed``."""
        if self._config is None:
            self._config = ConfigDict(self._bridge.config)
        return self._config

    @property
    def seed(self) -> int:
        """The run's seed, fixed when the ``Run`` was constructed."""
        assert self._bridge.seed is not None
        return self._bridge.seed

    @property
    def experiment(self) -> Experiment:
        """The underlying ``sacred.Experiment``, for what blowtorch does not wrap (ingredients, hooks)."""
        return self._bridge.experiment

    def config(self, function: F) -> F:
        """Decorator: a sacred config scope (its local variables become config entries)."""
        self._before_resolution("@run.config")
        self._bridge.experiment.config(function)
        self._config_functions.append(function)
        return function

    def named_config(self, function: F) -> F:
        """Decorator: a sacred named config, selected with ``with <function name>``."""
        self._before_resolution("@run.named_config")
        self._bridge.experiment.named_config(function)
        self._config_functions.append(function)
        return function

    def _before_resolution(self, what: str) -> None:
        if self._bridge.sacred_run is not None:
            raise ConfigError(
                f"{what} is registered after the config was resolved (by the first run[...] access); "
                f"register config scopes and named configs before reading config values"
            )

    # ---- user functions --------------------------------------------------------------------

    def train_step(self, function: F) -> F:
        """Decorator: the training step. Parameters by name from ``batch, model, epoch, step,
        batch_index, device, is_validate``; returns the loss or a dict of metrics."""
        return self._hooks.register("train_step", function)

    def validate_step(self, function: F) -> F:
        """Decorator: the validation step; same parameters and return values as ``train_step``."""
        return self._hooks.register("validate_step", function)

    def configure_optimizers(self, function: F) -> F:
        """Decorator: ``(model, device)`` -> optimizer(s), optionally with LR schedulers."""
        return self._hooks.register("configure_optimizers", function)

    def after_train(self, function: F) -> F:
        """Decorator: called with the epoch's training ``metrics``; may return extra metrics."""
        return self._hooks.register("after_train", function)

    def after_validate(self, function: F) -> F:
        """Decorator: called with the epoch's validation ``metrics``; may return extra metrics."""
        return self._hooks.register("after_validate", function)

    def before_epoch(self, function: F) -> F:
        """Decorator: called at the start of every epoch with ``model, epoch, step, device``."""
        return self._hooks.register("before_epoch", function)

    def after_epoch(self, function: F) -> F:
        """Decorator: called at the end of every epoch, after checkpointing."""
        return self._hooks.register("after_epoch", function)

    # ---- training --------------------------------------------------------------------------

    @checked_keywords("run(...)")
    def __call__(
        self,
        model: Any,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any] | None = None,
        loggers: Sequence[BaseLogger] | None = None,
        max_epochs: int = 1,
        use_gpu: bool = True,
        gpu_id: int = 0,
        resume: str | Path | None = None,
        save_path: str | Path = "train_logs",
        run_name: str | None = None,
        optimize_metric: str | None = None,
        checkpoint_metric: str | None = None,
        smaller_is_better: bool = True,
        optimize_first: bool = False,
        detect_anomalies: bool = False,
        *,
        checkpoint_every_n_steps: int | None = None,
        keep_last_epochs: int = 0,
        log_every_n_steps: int | None = None,
        upload_checkpoints: str | Sequence[str] | None = None,
        progress: bool = True,
        precision: str | int = "32",
        accumulate_grad_batches: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        compile: bool | Mapping[str, Any] = False,
        find_unused_parameters: bool = False,
        sync_batchnorm: bool = False,
    ) -> dict[str, Any] | None:
        """Train ``model`` as one sacred run and return its summary (``None`` for commands like ``print_config``).

        The options up to ``detect_anomalies`` may also be given by position, in the seed README's
        order; the ones after it by name only. Epochs count from 0 and ``max_epochs`` is the total.
        With ``optimize_first=False`` epoch 0 is a baseline pass over the training data without
        updates. ``resume`` continues a run from its run directory or a checkpoint file. See the
        README for every option.

        On SIGINT/SIGTERM the current step finishes, ``latest.pt`` is written, sacred records
        INTERRUPTED and the process exits with 130/143 (``SystemExit``); a second Ctrl-C aborts at once.
        """
        arguments = locals()
        self.get_config()
        if not self._bridge.is_training:
            self._bridge.run_command()
            return None
        try:
            loggers = [*self._loggers, *check_loggers(loggers, "run(loggers=...)")]
            return self._train(RunOptions.from_arguments({**arguments, "loggers": loggers}), model, train_loader, val_loader)
        except Interrupted as interrupted:  # sacred has recorded INTERRUPTED and latest.pt is written
            if self._job is not None and self._job.run_dir is not None:
                print(f"To resume: {self._resume_command(self._job.run_dir.path)}", file=sys.stderr)
            raise SystemExit(interrupted.exit_code) from None
        except KeyboardInterrupt:  # a second Ctrl-C, or one before training started; sacred has recorded it
            raise SystemExit(130) from None
        except Exception as error:  # if the sacred run had started, it has recorded FAILED with the full traceback
            self._bridge.exit_on_failure(error)  # like sacred's command line: the user's frames, exit 1 (not with -d)
            raise

    def _train(
        self, options: RunOptions, model: Any, train_loader: Iterable[Any], val_loader: Iterable[Any] | None
    ) -> dict[str, Any]:
        inputs = TrainingInputs(
            model=model,
            train_loader=train_loader,
            val_loader=val_loader,
            hooks=self._hooks,
            config_functions=tuple(self._config_functions),
            options=options,
            progress=Progress(enabled=options.progress),  # now: once sacred captures stderr, it is a pipe even on a terminal
        )
        # Everything that can be checked is checked before sacred records the run: a typo leaves
        # no FAILED run in the database and no directory in save_path.
        inputs.check(resuming=options.resume is not None or self._bridge.resume_path is not None)
        point = self._resume_point_for(options)
        if point is not None and "seed" in point.config:
            self._bridge.adopt_seed(point.config["seed"])
            self._config = None
        main = self._distributed is None or self._distributed.is_main  # under torchrun rank 0 owns the run directory
        # A resumed run directory is held from here on; a new one by the job, once it exists.
        held = point.run_dir if main and point is not None else None
        with RunDirectoryLock(held) if held is not None else nullcontext():
            prepared = prepare(inputs, point, self._distributed, self.seed)
            if main:
                check_save_path(options.save_path)
            self._job = TrainingJob(prepared, resume_command=self._resume_command)
            comment = point.comment if point is not None else None  # the chain, visible in Omniboard's run list
            return self._bridge.start(self._job, Path(options.save_path), comment)  # type: ignore[no-any-return]

    def _resume_command(self, run_dir: Path) -> str:
        """How to continue an interrupted run: the script's command line, or ``run(...)`` in a notebook."""
        if not self._bridge.owns_process:  # a notebook, or a command line given as Run(argv=...)
            return f"run(..., resume={str(run_dir)!r})"
        resume = [self._bridge.argv[0], "--resume", str(run_dir)]
        if self._distributed is None:
            return shlex.join(["python", *resume])
        nodes = int(os.environ.get("WORLD_SIZE", 1)) // max(int(os.environ.get("LOCAL_WORLD_SIZE", 1)), 1)
        if nodes > 1:  # the launcher's rendezvous options are not known here
            return "torchrun <your launcher options, on every node> " + shlex.join(resume) + "  (or --resume auto)"
        return shlex.join(["torchrun", "--nproc-per-node", str(self._distributed.world_size), *resume])

    def _resume_point_for(self, options: RunOptions) -> ResumePoint | None:
        resume, cli_resume = options.resume, self._bridge.resume_path
        if self._resume_point is not None:  # --resume PATH: it also wins over resume="auto" in the script
            if resume is not None and resume != AUTO and Path(resume).resolve() not in (
                Path(cli_resume or "").resolve(),
                self._resume_point.path.resolve(),
            ):
                raise OptionError(
                    f"run(resume={str(resume)!r}) and --resume {cli_resume} on the command line name "
                    f"different checkpoints; give only one of them"
                )
            return self._resume_point
        if cli_resume == AUTO and resume is not None and resume != AUTO:
            raise OptionError(
                f"run(resume={str(resume)!r}) names a checkpoint, but the command line says --resume auto; give only one of them"
            )
        if AUTO in (resume, cli_resume):
            return self._unfinished_run(options)
        return find_resume_point(resume) if resume is not None else None

    def _unfinished_run(self, options: RunOptions) -> ResumePoint | None:
        """``resume="auto"``: the newest unfinished run of this experiment (rank 0 looks, every rank loads it)."""
        save_path = Path(options.save_path).absolute()
        experiment = self._bridge.experiment_name
        cli_name = self._bridge.args.get("--name")
        run_name = options.run_name or (safe_run_name(cli_name) if cli_name else None) or None
        main = self._distributed is None or self._distributed.is_main
        found = find_unfinished_run(save_path, experiment, run_name) if main else None
        path = None if found is None else str(found.path)
        if self._distributed is not None:
            path = self._distributed.broadcast(path)
        if main:
            which = f"of experiment '{experiment}'" + (f" named '{run_name}'" if run_name else "")
            print(
                f"resume=auto: continuing {found.path} ({found.status} at epoch {found.epoch})"
                if found is not None
                else f"resume=auto: no unfinished run {which} in {save_path}; starting a new run",
                file=sys.stderr,
            )
        return None if path is None else find_resume_point(path)

    run = __call__
