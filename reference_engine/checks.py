"""Caffe's CHECK macros, raising instead of aborting.

The message text is Caffe's, byte for byte, so that a refusal by the reference
engine can be compared with the glog ``F`` line of real Caffe on its message
alone (the ``file:line]`` prefix differs between Caffe versions).
"""


class CaffeError(Exception):
    """What real Caffe would print on its fatal line, and die of.

    ``stage`` says when: "init" (net or solver construction), "forward",
    "backward" or "solver"; the net sets it as the error passes through.
    """

    def __init__(self, message: str, stage: str = "init"):
        super().__init__(message)
        self.message = message
        self.stage = stage


def fatal(message: str):
    """LOG(FATAL) << message."""
    raise CaffeError(message)


def not_implemented():
    """NOT_IMPLEMENTED in Caffe's common.hpp: LOG(FATAL) << "Not Implemented Yet"."""
    raise CaffeError("Not Implemented Yet")


def check(condition: bool, text: str, message: str = ""):
    """CHECK(condition) << message; ``text`` is the condition as Caffe spells it."""
    if not condition:
        # glog always puts one space between the condition and the streamed message.
        raise CaffeError(f"Check failed: {text} {message}")


def _check_op(op: str, a, b, a_text: str, b_text: str, message: str):
    ok = {
        "==": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]
    if not ok:
        raise CaffeError(
            f"Check failed: {a_text} {op} {b_text} ({_glog_value(a)} vs. {_glog_value(b)}) {message}"
        )


def _glog_value(value) -> str:
    """How glog streams a value: bools as 1/0, floats without a trailing .0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def check_eq(a, b, a_text: str, b_text: str, message: str = ""):
    _check_op("==", a, b, a_text, b_text, message)


def check_ne(a, b, a_text: str, b_text: str, message: str = ""):
    _check_op("!=", a, b, a_text, b_text, message)


def check_lt(a, b, a_text: str, b_text: str, message: str = ""):
    _check_op("<", a, b, a_text, b_text, message)


def check_le(a, b, a_text: str, b_text: str, message: str = ""):
    _check_op("<=", a, b, a_text, b_text, message)


def check_gt(a, b, a_text: str, b_text: str, message: str = ""):
    _check_op(">", a, b, a_text, b_text, message)


def check_ge(a, b, a_text: str, b_text: str, message: str = ""):
    _check_op(">=", a, b, a_text, b_text, message)


class Unsupported(Exception):
    """A Caffe feature the reference engine does not model: refused loudly, never guessed."""
