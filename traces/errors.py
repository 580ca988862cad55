"""The one exception type for bad user input (tensors, series, configs, traces, workloads)."""


class TasdsimError(Exception):
    """A user-facing error. Its message names the file, line or key and what is wrong;
    the CLI prints it as one line on stderr and exits non-zero."""
