import pytest

from blowtorch import Run, UsageError
from blowtorch.hooks import HookRegistry


def make_run() -> Run:
    return Run(name="hooks", argv=["hooks.py"], save_git_info=False)


def test_decorators_return_the_function_unchanged_and_stack():
    run = make_run()

    def step(batch, model, is_validate):
        return 0.0

    assert run.train_step(run.validate_step(step)) is step
    assert run._hooks.get("train_step").function is step
    assert run._hooks.get("validate_step").function is step
    assert run._hooks.functions() == [step]  # one function serving two hooks is listed once


def test_unknown_parameter_fails_at_decoration_naming_it_and_the_allowed_names():
    run = make_run()
    with pytest.raises(UsageError) as caught:

        @run.train_step
        def step(batch, modle):
            return 0.0

    message = str(caught.value)
    assert "'modle'" in message
    for allowed in ("batch", "model", "epoch", "step", "device", "is_validate"):
        assert allowed in message


def test_configure_optimizers_may_only_ask_for_model_and_device():
    run = make_run()
    with pytest.raises(UsageError, match="unknown parameter 'batch'"):

        @run.configure_optimizers
        def configure(model, batch):
            return None


def test_kwargs_receives_every_argument_and_var_positional_is_rejected():
    registry = HookRegistry()

    def everything(**kwargs):
        return kwargs

    hook = registry.register("train_step", everything)
    assert registry.get("train_step").wanted == ("batch", "model", "epoch", "step", "batch_index", "device", "is_validate")
    assert hook is everything

    def positional(*args):
        return args

    with pytest.raises(UsageError, match="cannot be passed by name"):
        registry.register("validate_step", positional)


def test_registering_a_second_train_step_is_an_error():
    run = make_run()

    @run.train_step
    def first(batch):
        return 0.0

    with pytest.raises(UsageError, match="already registered for 'test_registering_a_second_train_step_is_an_error.<locals>.first'"):

        @run.train_step
        def second(batch):
            return 0.0


def test_hook_receives_only_what_it_asked_for():
    registry = HookRegistry()
    seen = {}

    def step(model, batch):
        seen.update(model=model, batch=batch)

    registry.register("train_step", step)
    registry.get("train_step")({"batch": 1, "model": 2, "epoch": 3, "step": 4, "batch_index": 5, "device": 6, "is_validate": False})
    assert seen == {"model": 2, "batch": 1}
