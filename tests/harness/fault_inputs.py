"""Input arrays that fail as they are read: pickled into an engine's child process, they crash
or hang it there. Importing nothing else, so that the child imports little to unpickle them."""

import os
import time


class AbortsWhenRead:
    """An array whose reading aborts the process, as OpenCV does on a corrupt heap."""

    def __array__(self, dtype=None, copy=None):
        os.abort()


class HangsWhenRead:
    """An array whose reading never ends."""

    def __array__(self, dtype=None, copy=None):
        time.sleep(3600)
