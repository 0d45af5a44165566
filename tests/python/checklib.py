"""The check runner the Python and browser checks share: run each check, print ok/FAIL with
the traceback, then 'LABEL: N passed, M failed'. Returns the process exit code."""
import traceback


def run_checks(checks, label, suffix=""):
    passed = failed = 0
    for fn in checks:
        try:
            fn()
            passed += 1
            print(f"ok   {fn.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}")
            traceback.print_exc()
    print(f"{label}: {passed} passed, {failed} failed{suffix}")
    return 1 if failed else 0
