from habana_frameworks import STATE, record
from habana_frameworks.torch.utils.internal import is_lazy


def mark_step():
    record("mark_step")
    if is_lazy():
        STATE["pending"] = True
