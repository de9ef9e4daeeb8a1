"""How fast the suite's readers are, measured rather than asserted in tests (a loaded CI machine
would fail a wall-clock bound, and a fast one would not notice a slowdown):

    python3 scripts/bench_reports.py OUT_DIR

In OUT_DIR it writes 1000 synthetic nightly runs of 200 GEMM cases and two synthetic runs of 5000
cases each (the test suite's generators, tests/helpers/synthetic_runs.py), then times, each three
times, `bench history` over the 1000 runs and `bench report` of the 10,000 cases, and prints the
median seconds and the page sizes. Start-up (`bench --help`) is timed with `farm-bench` in the
notes, from outside the process."""
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from helpers.synthetic_runs import many_cases, write_nightly_runs, write_synthetic_run  # noqa: E402


def timed(args: list[str], repeats: int = 3) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "accelbench", *args], check=True, cwd=REPO, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = Path(sys.argv[1]).resolve()
    nightly, big = out / "nightly", out / "big"
    if not nightly.exists():
        write_nightly_runs(nightly, runs=1000, cases=200, slowdown_at=600, slowdown=1.2)
    if not big.exists():
        write_synthetic_run(big / "a", "Device A", many_cases(5000, 1.0, 1))
        write_synthetic_run(big / "b", "Device B", many_cases(5000, 1.3, 2))
    history = timed(["history", str(nightly), "-o", str(out / "history.html")])
    report = timed(["report", str(big / "a"), str(big / "b"), "-o", str(out / "report.html")])
    print(f"bench history, 1000 runs x 200 cases: {history:.1f} s (median of 3), "
          f"{(out / 'history.html').stat().st_size / 2**20:.1f} MiB")
    print(f"bench report, 10,000 cases: {report:.1f} s (median of 3), {(out / 'report.html').stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
