"""Two accuracy runs paired item by item (accelbench/e2e/task_accuracy/agreement.py): for each task
and precision both finished, the difference on the items both evaluated, its 95 % interval and
whether the runs agree (the interval holds 0). Writes OUT_DIR/agreement.md and prints it.

    python3 scripts/accuracy_agreement.py RUN_A RUN_B OUT_DIR

Exit code 0 where every pair agrees, 1 where some pair does not, 2 for an unreadable run folder."""
import sys
from pathlib import Path

from accelbench.e2e.task_accuracy.agreement import agreements, markdown
from accelbench.errors import ResultsError
from accelbench.store import load_run


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    try:
        run_a, run_b = load_run(argv[0]), load_run(argv[1])
    except ResultsError as exc:
        print(f"accuracy_agreement: {exc}", file=sys.stderr)
        return 2
    rows = agreements(run_a, run_b)
    if not rows:
        print("accuracy_agreement: the two runs share no finished accuracy case", file=sys.stderr)
        return 2
    text = markdown(run_a, run_b, rows)
    out = Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    (out / "agreement.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if all(r.agree for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
