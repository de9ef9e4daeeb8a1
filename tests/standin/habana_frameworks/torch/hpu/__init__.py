"""hpu module stand-in. As in the real bridge, HPUGraph exists in lazy mode only; capture refuses
to begin while flushed work is still pending (it would be captured); a collective inside a capture
needs PT_HPU_ENABLE_LAZY_COLLECTIVES=true set before the bridge loaded; and replay re-issues the
ops dispatched during capture, every one writing into the buffers it wrote at capture (so the
captured call's output tensor holds each replay's result, as a real graph's does)."""
import os
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from habana_frameworks import STATE, record
from habana_frameworks.torch.utils.internal import is_lazy

LAZY_COLLECTIVES = os.environ.get("PT_HPU_ENABLE_LAZY_COLLECTIVES", "").lower() in ("1", "true")


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "c10d" and not LAZY_COLLECTIVES:
            raise RuntimeError(f"stand-in: {func} inside an HPU graph needs PT_HPU_ENABLE_LAZY_COLLECTIVES=true "
                               "set before the bridge is loaded (Habana's HPU Graphs inference page)")
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


def _into_captured(captured, fresh):
    """Each fresh result copied into the buffer the same op wrote at capture."""
    olds = captured if isinstance(captured, (tuple, list)) else (captured,)
    news = fresh if isinstance(fresh, (tuple, list)) else (fresh,)
    for value in news:  # a collective's work handle: a graph's replay completes it, as the device does
        if not isinstance(value, torch.Tensor) and callable(getattr(value, "wait", None)):
            value.wait()
    for old, new in zip(olds, news):
        if isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor) and new is not old \
                and old.shape == new.shape:
            old.copy_(new)


class Stream:
    pass


@contextmanager
def stream(s):
    record("stream")
    yield


if is_lazy():
    class HPUGraph:
        def __init__(self):
            self._recorder = None

        def capture_begin(self):
            record("HPUGraph.capture_begin")
            if STATE["pending"]:
                raise RuntimeError("stand-in: graph capture began with flushed work still pending "
                                   "(synchronize first, or that work is captured into the graph)")
            self._recorder = _OpRecorder()
            self._recorder.__enter__()

        def capture_end(self):
            self._recorder.__exit__(None, None, None)
            record("HPUGraph.capture_end", ops=len(self._recorder.ops))

        def replay(self):
            record("HPUGraph.replay")
            for func, args, kwargs, captured in self._recorder.ops:
                _into_captured(captured, func(*args, **kwargs))
