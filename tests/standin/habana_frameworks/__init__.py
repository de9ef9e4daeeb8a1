"""Stand-in for Intel's Gaudi PyTorch bridge (see ../README.md). Records calls in CALLS."""
CALLS: list[tuple] = []


def record(name: str, **args) -> None:
    CALLS.append((name, args))
