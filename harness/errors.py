"""The harness's own failures: never recorded as an engine's outcome."""


class HarnessError(Exception):
    """Bad input or a broken set-up: the message names the input, its value and the constraint."""


class RuntimeUnavailable(HarnessError):
    """A Caffe runtime that is not installed, or cannot be started here, with the reason."""
