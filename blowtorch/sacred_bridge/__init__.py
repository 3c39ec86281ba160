"""All of blowtorch's contact with sacred.

- ``experiment``: the ``sacred.Experiment`` built for the user's script; the command line, the
  config and the seed; starting the run.
- ``record``: the run record a training job writes to (the sacred run's id, names, config, info,
  metrics and files), and its variant that records nothing.
- ``observers`` and ``mongo``: the default file storage, and MongoDB observers with blowtorch's
  timeouts, connection check and outage policy.

Outside this package, only ``blowtorch.run`` names sacred's public types (``Experiment``,
``RunObserver``) in its signatures; nothing else imports sacred.
"""

import warnings

with warnings.catch_warnings():
    # sacred 0.8.7 imports pkg_resources, which warns about its own deprecation on every start;
    # nothing a blowtorch user can act on.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import sacred  # noqa: F401
