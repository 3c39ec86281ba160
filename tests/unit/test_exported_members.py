import blowtorch
import blowtorch.loggers


def test_public_api_is_pinned():
    assert sorted(blowtorch.__all__) == sorted(
        [
            "BaseLogger",
            "BlowtorchError",
            "CheckpointError",
            "ConfigError",
            "ConfigKeyError",
            "DatabaseError",
            "MissingExtraError",
            "MissingFileError",
            "NonFiniteLossError",
            "OptionError",
            "Run",
            "RunInfo",
            "TrainingError",
            "UsageError",
            "__version__",
        ]
    )
    for name in blowtorch.__all__:
        assert hasattr(blowtorch, name)


def test_every_error_is_a_blowtorch_error_and_a_builtin():
    for name in blowtorch.__all__:
        member = getattr(blowtorch, name)
        if isinstance(member, type) and issubclass(member, Exception) and member is not blowtorch.BlowtorchError:
            assert issubclass(member, blowtorch.BlowtorchError)
            assert any(issubclass(member, builtin) for builtin in (ValueError, TypeError, KeyError, RuntimeError, FileNotFoundError, ImportError, ConnectionError))


def test_loggers_package_exports_the_base_class():
    assert blowtorch.loggers.BaseLogger is blowtorch.BaseLogger
