"""The sacred Experiment behind a ``Run``: built for the user's script, its command line, config and seed.

All contact with sacred's private API (``_create_run``, its docopt usage) is in this package.

Life cycle:

1. ``SacredBridge(...)`` when ``Run()`` is constructed: builds the Experiment attributed to the
   caller's script and parses the command line; then ``configure(...)`` adds the config files (or
   a resumed checkpoint's config) and fixes the seed, seeding python, numpy and torch right away,
   so a model built before any config access is reproducible.
2. ``resolve()`` on first config access: sacred merges files < scopes < named configs < ``with``
   and creates the (not yet started) sacred run, with its observers.
3. ``start(main, ...)`` from ``run(...)``: attaches the default file storage, checks that every
   MongoDB server answers, and starts the run, which calls ``main(record)`` as its main function
   with the run's :class:`~blowtorch.sacred_bridge.record.SacredRecord`: the job never sees sacred.
4. ``exit_on_failure(error)`` if ``run(...)`` failed: with the process's own command line, the error
   is shown as sacred's command line shows it and the process exits with 1 (see ``errors_display``).
"""

from __future__ import annotations

import os
import random
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from docopt import docopt
from sacred.arg_parser import get_config_updates
from sacred.commandline_options import cli_option
from sacred.observers import RunObserver
from sacred.randomness import get_seed
from sacred.utils import SacredError, apply_backspaces_and_linefeeds, format_sacred_error

from blowtorch.config import merge_configs
from blowtorch.distributed import Distributed
from blowtorch.errors import ConfigError, UsageError
from blowtorch.rng import seed_everything
from blowtorch.rundir import plain_config
from blowtorch.sacred_bridge.errors_display import exit_on_failure
from blowtorch.sacred_bridge.mongo import check_connections
from blowtorch.sacred_bridge.observers import DefaultFileStorageObserver, database_observers
from blowtorch.sacred_bridge.record import RunRecord, SacredRecord
from blowtorch.sacred_bridge.sources import gather_sources, new_experiment

MAIN_COMMAND = "train"


class SacredBridge:
    """Owns the sacred Experiment and the one sacred run a ``Run`` makes."""

    def __init__(
        self,
        caller_globals: dict[str, Any],
        *,
        name: str | None,
        argv: Sequence[str] | str | None,
        observers: Sequence[RunObserver],
        save_git_info: bool,
        mongo_uri: str | None = None,
        mongo_db_name: str | None = None,
        mongo_timeout: float = 5.0,
        distributed: Distributed | None = None,
    ) -> None:
        self._globals = caller_globals
        self.distributed = distributed  # under torchrun: only rank 0 records the run and prints
        self._save_git_info = save_git_info
        self._mongo = (mongo_uri, mongo_db_name, mongo_timeout)
        mainfile = caller_globals.get("__file__")
        interactive = mainfile is None
        if interactive and not name:
            raise ConfigError(
                "Run() is used interactively (a notebook or a REPL has no script file); pass a name, "
                "e.g. Run(name='my-experiment')"
            )
        self.base_dir = str(Path(mainfile).resolve().parent) if mainfile else os.getcwd()
        name = name or Path(mainfile).stem  # type: ignore[arg-type]
        self.experiment = new_experiment(
            name=name,
            base_dir=self.base_dir,
            interactive=interactive,
            save_git_info=False,  # the user's script is gathered, with git, when the run starts
            additional_cli_options=[resume_option, mongo_uri_option],
        )
        self.experiment.doc = caller_globals.get("__doc__")
        # progress bars collapse to their last state; sacred annotates the attribute as None
        self.experiment.captured_out_filter = apply_backspaces_and_linefeeds  # type: ignore[assignment]
        self._main: Callable[[RunRecord], Any] | None = None
        self.experiment.main(_named_main(self._call_main))
        for observer in observers:
            if not isinstance(observer, RunObserver):
                raise UsageError(f"observers must be sacred RunObserver instances, got {type(observer).__name__}")
            self.experiment.observers.append(observer)

        self.argv = _command_line(argv, name, interactive)
        _check_program_name(self.argv, argv, self.experiment.commands)
        # Only the process's own command line ends the process on a failure (sacred's way); an argv given
        # by the caller, or a notebook's, makes run(...) a library call that raises.
        self.owns_process = argv is None and not interactive
        self.short_usage, self.usage, internal_usage = self.experiment.get_usage(program_name=self.argv[0])
        self.args = docopt(internal_usage, [str(a) for a in self.argv[1:]], default_help=False)
        self._handle_help_and_command()
        self.config_updates, self.named_configs = get_config_updates(self.args["UPDATE"])
        self.seed: int | None = None
        self.seed_drawn = False  # no seed was given: a fresh random one
        self.sacred_run: Any = None
        self._config: dict[str, Any] | None = None

    @property
    def is_main_process(self) -> bool:
        return self.distributed is None or self.distributed.is_main

    @property
    def resume_path(self) -> str | None:
        """The ``--resume PATH`` of the command line, if any."""
        return self.args.get("--resume") or None

    def configure(
        self, config_dicts: Sequence[dict[str, Any]], random_seed: int | None, checkpoint: Mapping[str, Any] | None
    ) -> None:
        """Add the config and fix the seed, seeding python, numpy and torch right away.

        With the ``checkpoint`` of ``--resume``, the resumed run's own command line (its named
        configs and ``with`` updates, recorded in the checkpoint) is repeated on the current config
        files and scopes, with the checkpoint's seed, and this command line's updates apply on top.
        A checkpoint that recorded no command line (blowtorch < 0.7) is itself the base config.
        """
        config = merge_configs(config_dicts)
        if checkpoint is not None:
            recorded = checkpoint.get("command_line")
            if recorded is None:
                config = merge_configs([checkpoint["config"]])
                self.config_updates = merge_configs([checkpoint["config"], self.config_updates])
            else:
                named = list(recorded["named_configs"])
                self.named_configs = [*named, *(n for n in self.named_configs if n not in named)]
                seed = {"seed": checkpoint["config"]["seed"]} if "seed" in checkpoint["config"] else {}
                self.config_updates = merge_configs([seed, recorded["config_updates"], self.config_updates])
        self.seed = self._fix_seed(random_seed, config)
        if self.distributed is not None:  # also a seed drawn at random: every rank builds the same model
            self.seed = self.distributed.broadcast(self.seed)
        config["seed"] = self.seed
        try:
            # One dict, not one per file: sacred 0.8.7 loses its check for misspelled `with` keys
            # when two config dicts follow each other.
            self.experiment.add_config(config)
        except (KeyError, ValueError, TypeError) as error:
            raise ConfigError(f"the config files cannot be used as sacred config: {error}") from error
        seed_everything(self.seed)

    def adopt_seed(self, seed: int) -> None:
        """A resumed run whose seed was drawn at random keeps its checkpoint's seed instead (which
        seeds the distributed sampler's data order, and is what its config recorded); a seed the user
        chose stays. The config is resolved again with it."""
        if not self.seed_drawn or seed == self.seed:
            return
        self.seed = seed
        self.config_updates = {**self.config_updates, "seed": seed}
        self.sacred_run, self._config = None, None

    @property
    def experiment_name(self) -> str:
        """The experiment's name as the run records it: sacred's ``-n NAME``, else the experiment's own."""
        return str(self.args.get("--name") or self.experiment.path)

    # ---- construction ----------------------------------------------------------------------

    def _handle_help_and_command(self) -> None:
        if self.args["help"] or self.args["--help"]:
            if self.is_main_process:
                self.experiment._handle_help(self.args, self.usage)
            sys.exit(0)
        error = self.experiment._check_command(self.command)
        if error:
            if self.is_main_process:
                print(self.short_usage, file=sys.stderr)
                print(error, file=sys.stderr)
            sys.exit(1)

    @property
    def command(self) -> str:
        return str(self.args.get("COMMAND") or MAIN_COMMAND)

    @property
    def is_training(self) -> bool:
        return self.command == MAIN_COMMAND

    def _fix_seed(self, random_seed: int | None, config: dict[str, Any]) -> int:
        """``with seed=N`` > ``random_seed`` > a seed in the config files > a fresh random one."""
        if "seed" in self.config_updates:
            return _check_seed(self.config_updates["seed"], "the command line ('with seed=...')")
        if random_seed is not None:
            return _check_seed(random_seed, "random_seed")
        if "seed" in config:
            return _check_seed(config["seed"], "the config files")
        self.seed_drawn = True
        return int(get_seed(random.Random(os.urandom(16))))  # not the global random: no side effects

    # ---- config resolution -----------------------------------------------------------------

    def resolve(self) -> Any:
        """Create the sacred run once (config resolved, observers attached, not started)."""
        if self.sacred_run is None:
            # blowtorch builds the MongoDB observer of `-m` itself (same observer, sane timeouts).
            # Under torchrun only rank 0 has observers: the others resolve the config, nothing more.
            options = {**self.args, "--mongo_db": None, **({} if self.is_main_process else {"--unobserved": True})}
            try:
                sacred_run = self.experiment._create_run(
                    self.command, self.config_updates, self.named_configs, info={}, meta_info={}, options=options
                )
            except SacredError as error:
                # Like sacred's own command line: its message and usage, no traceback, exit 1;
                # with -d/--debug the exception is raised instead.
                message = format_sacred_error(error, self.short_usage).strip()
                if self.args.get("--debug"):
                    raise ConfigError(message) from error
                if self.is_main_process:  # under torchrun: once, not once per process
                    print(message, file=sys.stderr)
                sys.exit(1)
            sacred_run.meta_info["options"]["--mongo_db"] = self.args.get("--mongo_db")
            if sacred_run.config.get("seed") != self.seed:
                raise ConfigError(
                    f"a config scope or named config sets seed={sacred_run.config.get('seed')!r}, but the seed was "
                    f"fixed to {self.seed} when Run() was constructed (the model may already be built with it). "
                    f"Set the seed with Run(random_seed=...), in a config file, or with 'with seed=N'"
                )
            if self.is_training and not sacred_run.unobserved:
                uri, db_name, timeout = self._mongo
                sacred_run.observers.extend(
                    database_observers(self.args.get("--mongo_db"), (uri, self.args.get("--mongo_uri")), db_name, timeout)
                )
            self.sacred_run = sacred_run
            self._config = dict(sacred_run.config)
            if self.distributed is not None:  # rank 0's resolved config is every rank's
                self._config = self.distributed.broadcast(plain_config(self._config))
        return self.sacred_run

    @property
    def config(self) -> dict[str, Any]:
        self.resolve()
        assert self._config is not None
        return dict(self._config)

    # ---- running ---------------------------------------------------------------------------

    def start(self, main: Callable[[RunRecord], Any], save_path: Path, comment: str | None = None) -> Any:
        """Start the sacred run; it calls ``main(record)`` and records COMPLETED/FAILED/INTERRUPTED.

        ``comment`` is the run's ``meta.comment`` unless ``-c`` gave one. Under torchrun, ranks other
        than 0 call ``main`` with a record that keeps nothing.
        """
        sacred_run = self.resolve()
        if not self.is_main_process:
            return main(RunRecord(self.config, str(self.experiment.path)))
        if sacred_run.start_time is not None:
            raise UsageError("this Run has already trained once; a Run object starts one sacred run, create a new one")
        if not sacred_run.unobserved:  # with -u nothing would record them: neither sources gathered nor git asked
            self._record_sources(sacred_run)
        if self.args.get("--name"):
            sacred_run.experiment_info["name"] = self.args["--name"]
        if comment and not sacred_run.meta_info.get("comment"):
            # Observers store meta once, when the run starts: now, not from inside the job.
            sacred_run.meta_info["comment"] = comment
        if self.is_training:
            sacred_run.observers.append(DefaultFileStorageObserver(save_path))
        if not sacred_run.unobserved:
            check_connections(sacred_run.observers, self._mongo[2])  # before training, not 30 s into it
        self._main = main
        try:
            return sacred_run()
        finally:
            self._main = None

    def exit_on_failure(self, error: Exception) -> None:
        """Show an error that ended ``run(...)`` as sacred's command line does and exit with 1; or return
        (``-d``, ``Run(argv=...)``, a notebook), and the caller re-raises it."""
        exit_on_failure(
            error,
            owns_process=self.owns_process,
            debug=bool(self.args.get("--debug")),
            post_mortem=bool(self.args.get("--pdb")),
            short_usage=self.short_usage,
        )

    def run_command(self) -> Any:
        """Run a command other than training (``print_config``, ...), exactly as sacred would (on rank 0 only)."""
        run = self.resolve()
        if not self.is_main_process:
            return None
        self._record_sources(run)  # print_dependencies shows them, and an observed command records them
        return run()

    def _call_main(self, _run: Any) -> Any:
        assert self._main is not None
        return self._main(SacredRecord(_run))

    def _record_sources(self, sacred_run: Any) -> None:
        """Gather the script's sources, dependencies and git state (once, as the run starts: modules
        imported after Run() count too) into the experiment and the run sacred is about to start."""
        mainfile, sources, dependencies, self._save_git_info = gather_sources(self._globals, self._save_git_info, self.base_dir)
        self.experiment.mainfile = mainfile
        self.experiment.sources = sources
        self.experiment.dependencies = dependencies
        sacred_run.experiment_info = self.experiment.get_experiment_info()


@cli_option("-R", "--resume")
def resume_option(args: str, run: Any) -> None:
    """Continue a blowtorch run from a run directory or a checkpoint file; its config is the base."""
    # blowtorch reads the path from the parsed command line when Run() is constructed.


@cli_option("-M", "--mongo_uri")
def mongo_uri_option(args: str, run: Any) -> None:
    """Also record the run in MongoDB at this full URI (auth, TLS, options); the database is the URI's path, else 'sacred'."""
    # blowtorch builds the observer itself, with the connection check and timeouts of Run(mongo_uri=...).


def _named_main(call: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The function sacred runs as its main command; its name is the command's name."""

    def train(_run):  # type: ignore[no-untyped-def]
        return call(_run)

    train.__name__ = train.__qualname__ = MAIN_COMMAND
    return train


def _check_seed(seed: Any, origin: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"the seed from {origin} must be an int, got {seed!r}")
    if not 0 <= seed < 2**32:  # sacred seeds numpy with it, which takes 32 bits
        raise ConfigError(f"the seed from {origin} must be between 0 and 2**32 - 1, got {seed}")
    return seed


def _command_line(argv: Sequence[str] | str | None, name: str, interactive: bool) -> list[str]:
    """The command line as ``sys.argv`` spells it: the program name, then sacred's arguments.

    ``None`` is the process's ``sys.argv``, except in an interactive session: there it belongs to the
    Jupyter kernel (``ipykernel_launcher.py -f kernel.json``) or the REPL, not to the experiment. No
    command line (``[]``, ``""``, or ``None`` interactively) is the experiment's name alone.
    """
    if argv is None:
        arguments = [] if interactive else list(getattr(sys, "argv", None) or [])
    elif isinstance(argv, str):
        arguments = shlex.split(argv)
    else:
        arguments = [str(a) for a in argv]
    if not arguments or not arguments[0]:
        return [name, *arguments[1:]]
    return arguments


def _check_program_name(command_line: list[str], argv: Sequence[str] | str | None, commands: Iterable[str]) -> None:
    """``argv`` starts with the program name, like ``sys.argv``; say so when it starts with an argument instead."""
    first = command_line[0]
    if argv is not None and (first in ("with", "help", *commands) or first.startswith("-")):
        raise UsageError(
            f"argv starts with the program name, like sys.argv, but its first entry is the argument {first!r}, which "
            f"would be taken as the program name; put a name first, e.g. argv={['train.py', *command_line]!r}"
        )
