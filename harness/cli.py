"""The ``caffe-conformance`` command.

Exit codes: 0 success (engines agree), 1 a disagreement, 2 a usage or set-up error
or a net Caffe refuses (explain).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import HarnessError

EXIT_OK, EXIT_DISAGREE, EXIT_ERROR = 0, 1, 2


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise HarnessError(f"{path}: cannot read: {e.strerror}") from e


def _state_args(parser):
    parser.add_argument("--phase", choices=("TRAIN", "TEST"), default="TRAIN")
    parser.add_argument("--level", type=int, default=0)
    parser.add_argument("--stage", action="append", default=[], metavar="S",
                        help="a NetState stage (repeatable)")


def cmd_explain(args) -> int:
    from google.protobuf import text_format

    from reference_engine.checks import CaffeError

    from .explain import explain, render_table

    text = _read_text(args.net)
    try:
        data = explain(text, args.phase, args.level, args.stage)
    except text_format.ParseError as e:
        print(f"{args.net}: not a valid NetParameter prototxt: {e}", file=sys.stderr)
        return EXIT_ERROR
    except CaffeError as e:
        if args.json:
            print(json.dumps({"layers": [], "outputs": [], "errors": [e.message]}, indent=2))
        print(f"{args.net}: Caffe refuses this net: {e.message}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(data, indent=2) if args.json else render_table(data))
    return EXIT_OK


def cmd_runtime(args) -> int:
    from . import runtime_cli

    if args.action == "install":
        runtime_cli.install(args.runtime, args.rootfs)
    else:
        print(json.dumps(runtime_cli.info(args.runtime, args.rootfs), indent=2))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caffe-conformance",
                                     description="Differential testing of Caffe training semantics.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("explain", help="which layers need backward, and why, as Caffe decides it")
    p.add_argument("net", help="a NetParameter prototxt")
    _state_args(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=cmd_explain)

    p = sub.add_parser("runtime", help="install or describe a real-Caffe runtime")
    p.add_argument("action", choices=("install", "info"))
    p.add_argument("--runtime", default="rootfs", choices=("rootfs", "docker", "docker-bvlc", "local"))
    p.add_argument("--rootfs", default=None, help="where the rootfs runtime lives (default: the cache dir)")
    p.set_defaults(handler=cmd_runtime)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except HarnessError as e:
        print(f"caffe-conformance: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("caffe-conformance: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
