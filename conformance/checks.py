"""The check runner the Python conformance checks of the operations listener share: each check is
a function that returns a detail line or raises; one "ok"/"FAIL" line per check, then
"NAME: N passed, M failed" (what conformance/run sums) and the exit status.
"""

import sys
import traceback

results = {"passed": 0, "failed": 0}


def check(fn):
    """Runs `fn` now, as a decorator: its name is the check's."""
    try:
        detail = fn()
    except Exception:
        print(f"FAIL {fn.__name__}")
        traceback.print_exc(file=sys.stdout)
        results["failed"] += 1
    else:
        print(f"ok   {fn.__name__}" + (f": {detail}" if detail else ""))
        results["passed"] += 1
    return fn


def finish(name):
    """Prints the totals and exits, 1 when any check failed."""
    print(f"{name}: {results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)
