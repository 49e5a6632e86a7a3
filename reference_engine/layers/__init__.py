"""The layer catalogue: one module per Caffe layer type, each registering its class.

Importing this package imports every module in it, so a new layer type needs no
other edit than its own file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
