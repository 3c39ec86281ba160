"""The version of blowtorch, in a module of its own so that the package can read it without importing itself."""

__version__ = "0.6.0"
