# Compiles proto/caffe.proto into caffe_pb2.py with grpc_tools.protoc (default: reference_engine/).
import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
REPO_ROOT = PROTO_DIR.parent
DEFAULT_OUT_DIR = REPO_ROOT / "reference_engine"


def generate(out_dir):
    """Write caffe_pb2.py for proto/caffe.proto into out_dir and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The proto is compiled from its own directory so the descriptor's file name
    # is plain "caffe.proto", whatever the caller's working directory.
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out_dir}", str(PROTO_DIR / "caffe.proto")]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc exited with status {status}: {' '.join(args)}")
    return out_dir / "caffe_pb2.py"


if __name__ == "__main__":
    print(generate(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT_DIR))
