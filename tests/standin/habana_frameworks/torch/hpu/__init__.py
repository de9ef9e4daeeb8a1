"""hpu module stand-in. As in the real bridge, HPUGraph exists in lazy mode only; capture refuses
to begin while flushed work is still pending (it would be captured), and replay re-issues the
aten ops dispatched during capture (ops writing into persistent tensors replay faithfully)."""
from contextlib import contextmanager

from torch.utils._python_dispatch import TorchDispatchMode

from habana_frameworks import STATE, record
from habana_frameworks.torch.utils.internal import is_lazy


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops.append((func, args, kwargs))
        return func(*args, **kwargs)


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
            for func, args, kwargs in self._recorder.ops:
                func(*args, **kwargs)
