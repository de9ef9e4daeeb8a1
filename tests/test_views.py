"""What a benchmark means lives in the benchmark: reports draw its overview rows, plots, tables,
roofline points and headline from its declarations, recorded in the run files."""
import ast
import re

from accelbench.benchmark import benchmark_classes
from accelbench.store import load_run

from conftest import REPO

REPORTS = REPO / "accelbench" / "reports"


def code_words(path):
    """Every string constant (docstrings left out) and every variable name of a module's code."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value
        elif isinstance(node, ast.Name):
            yield node.id


def test_no_report_module_names_a_benchmark_or_its_metrics():
    names = set(benchmark_classes())
    metrics = {m for cls in benchmark_classes().values() for m in (*cls.headline_metrics, *cls.table.key)}
    generic = {"time", "tflops", "mfu", "gbps", "bw_util", "tokens_per_s"}  # the harness's own (accelbench.metrics)
    found = []
    for path in sorted(REPORTS.glob("*.py")):
        for word in code_words(path):
            for name in names | (metrics - generic):
                if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", word, re.I):
                    found.append(f"{path.name}: {word!r} names {name!r}")
    assert not found, "\n".join(found)


def test_a_run_records_each_benchmarks_view_and_old_runs_read_as_declared_now():
    old = load_run(next((REPO / "results").glob("*-h100-decode-must-show")))
    assert old.info.method_version == 0  # written before views were recorded
    decode = old.views["decode"]
    assert decode["headline_metrics"][0] == "decode_tokens_per_s"
    assert any(row["name"].startswith("decode tokens/s, batch 1") for row in decode["overview"])
    graphs = next(c for c in old.cases if c.case_id == "llama3.1-8b/graphs/bf16/b1/p512/n256")
    assert graphs.headline_metric().name == "decode_tokens_per_s"  # the legacy order, as compare read it
    assert graphs.roofline is None  # as written; read as decode declares it now:
    assert old.roofline_of(graphs).kind == "decode" and old.roofline_of(graphs).per == "tpot"
