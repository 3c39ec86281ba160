"""The public API is what ``blowtorch/__init__.py`` exports, no more and no less (derived, not hand-copied)."""

import inspect
import types

import blowtorch
import blowtorch.errors
import blowtorch.loggers


def test_all_lists_exactly_the_public_names_of_the_package():
    public = {  # dir(): Run, BaseLogger and RunInfo are imported on first use
        name
        for name in dir(blowtorch)
        if not name.startswith("_") and not isinstance(getattr(blowtorch, name), types.ModuleType)
    }
    assert set(blowtorch.__all__) == public | {"__version__"}
    assert len(blowtorch.__all__) == len(set(blowtorch.__all__))
    assert isinstance(blowtorch.__version__, str) and blowtorch.__version__[0].isdigit()


def test_every_error_of_the_error_module_is_exported():
    errors = {name for name, value in vars(blowtorch.errors).items() if inspect.isclass(value) and issubclass(value, Exception)}
    assert errors <= set(blowtorch.__all__), errors - set(blowtorch.__all__)


def test_every_error_is_a_blowtorch_error_and_a_builtin():
    for name in blowtorch.__all__:
        member = getattr(blowtorch, name)
        if isinstance(member, type) and issubclass(member, Exception) and member is not blowtorch.BlowtorchError:
            assert issubclass(member, blowtorch.BlowtorchError)
            builtins = (ValueError, TypeError, KeyError, RuntimeError, FileNotFoundError, ImportError, ConnectionError)
            assert any(issubclass(member, builtin) for builtin in builtins)


def test_the_error_tree_in_the_module_docstring_names_every_error():
    for name, value in vars(blowtorch.errors).items():
        if inspect.isclass(value) and issubclass(value, Exception):
            assert name in blowtorch.errors.__doc__, name


def test_loggers_package_exports_the_base_class():
    assert blowtorch.loggers.BaseLogger is blowtorch.BaseLogger
