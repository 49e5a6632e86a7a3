"""The engines a case runs on, each behind harness.engine.Engine.

- reference.py: the reference engine (reference_engine/) in this process;
- command.py: the protocol client for any command that speaks docs/protocol.md;
- caffe.py: real Caffe, the worker (worker.py, the one file that runs beside Caffe) started
  through a runtime of runtimes/ (one module each, registered by name);
- opencv.py: OpenCV's Caffe importer, forward only, in a fork server of its own;
- native/: the C++ probe that reads Caffe's exact backward flags.
"""
