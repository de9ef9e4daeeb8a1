"""Stand-in for Intel's Gaudi PyTorch bridge (see ../README.md). Records calls in CALLS."""
CALLS: list[tuple] = []
# Lazy mode: work flushed by mark_step but not yet waited for by synchronize. The real bridge
# would capture such work into a graph begun now; the stand-in refuses to.
STATE = {"pending": False}


def record(name: str, **args) -> None:
    CALLS.append((name, args))
