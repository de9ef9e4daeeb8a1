"""Task accuracy of a real checkpoint per precision (docs/benchmarks.md, "Task accuracy").

The package: benchmark.py (the cases: task x precision, what one case measures), tasks.py
(lm-eval's task definitions with documents from local files), lm.py (the suite's decoder as an
lm-eval language model), paired.py (accuracy, paired differences, intervals and verdicts).
"""
from accelbench.e2e.task_accuracy.benchmark import PRECISIONS, TaskAccuracy

__all__ = ["PRECISIONS", "TaskAccuracy"]
