"""Root pytest hooks, applied to the unit tests and to the notebooks that nbval collects.

nbval waits a fixed 5 s for a cell's output messages after the kernel has replied that the
cell finished. On a loaded 2-core machine, after a 90 s training cell, the kernel's output
channel can lag behind its reply by more than that, and nbval then fails a cell that ran
correctly ("Timeout of 5 seconds exceeded waiting for output"; seen once in CI on chapter 9).
The cell's own time limit (``--nbval-cell-timeout`` in pyproject.toml) is unaffected.
"""

NBVAL_OUTPUT_WAIT_S = 120


def pytest_collection_modifyitems(config, items):
    for item in items:
        if type(item).__name__ == "IPyNbCell" and hasattr(item, "output_timeout"):
            item.output_timeout = NBVAL_OUTPUT_WAIT_S
