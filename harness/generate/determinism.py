"""A seed draws the same cases in any process.

Hypothesis sometimes draws an integer, float or string from the constants it finds in the
source of the "local" modules loaded so far (its local constants). Which modules are
loaded differs between a campaign, a test run and a replay, and any edit to this
package's source changes the constants too, so the same seed drew different cases. The
campaign turns that pool off; Hypothesis's built-in constants, which are fixed, stay.
"""

from __future__ import annotations

from hypothesis.internal.conjecture import providers

NO_LOCAL_CONSTANTS = providers.Constants()


def _no_local_constants() -> providers.Constants:
    return NO_LOCAL_CONSTANTS


def independent_of_imports() -> None:
    """Make every later draw independent of the modules loaded (idempotent)."""
    # Hypothesis has no public switch for this; its provider looks the collector up on
    # the module at each test case, so replacing it there is enough. The constants
    # cache may already hold local constants: drop it.
    if providers._get_local_constants is not _no_local_constants:
        providers._get_local_constants = _no_local_constants
        providers.CONSTANTS_CACHE.cache.clear()
