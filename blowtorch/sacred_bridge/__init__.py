"""Everything that touches sacred. No other package of blowtorch uses sacred's internals."""

import warnings

with warnings.catch_warnings():
    # sacred 0.8.7 imports pkg_resources, which warns about its own deprecation on every start;
    # nothing a blowtorch user can act on.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import sacred  # noqa: F401
