"""Stand-in for Intel's Gaudi PyTorch bridge (see ../README.md). Records calls in CALLS."""
import os

CALLS: list[tuple] = []
# The Gaudi software line modelled: 1.19 and 1.20 default to lazy mode, 1.21 and later to eager.
RELEASE = os.environ.get("STANDIN_HPU_RELEASE", "1.22")
# pending: lazy mode, work flushed by mark_step but not yet waited for by synchronize (the real
# bridge would capture such work into a graph begun now; the stand-in refuses to). module: the
# card this process took, once it has used the device. pinned: host tensors pinned for the HPU.
STATE = {"pending": False, "module": None, "pinned": set()}


def record(name: str, **args) -> None:
    CALLS.append((name, args))


def _dump_calls(directory: str) -> None:
    """STANDIN_HPU_CALLS_DIR: each process writes the names of its calls there as it exits, so a
    test can see what ranks it did not start itself did (e.g. that they created `hccl`)."""
    import json
    path = os.path.join(directory, f"calls-{os.getpid()}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump([[name, {k: v for k, v in args.items() if isinstance(v, (int, str, bool, type(None)))}]
                   for name, args in CALLS], f)


if os.environ.get("STANDIN_HPU_CALLS_DIR"):
    import atexit
    atexit.register(_dump_calls, os.environ["STANDIN_HPU_CALLS_DIR"])


def lazy_by_default() -> bool:
    major, minor = (int(x) for x in RELEASE.split(".")[:2])
    return (major, minor) < (1, 21)
