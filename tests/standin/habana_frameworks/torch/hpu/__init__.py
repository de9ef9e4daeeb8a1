"""HPUGraph stand-in: records the aten ops dispatched between capture_begin and capture_end and
re-issues them on replay (ops writing into persistent tensors replay faithfully)."""
from contextlib import contextmanager

from torch.utils._python_dispatch import TorchDispatchMode

from habana_frameworks import record


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops.append((func, args, kwargs))
        return func(*args, **kwargs)


class HPUGraph:
    def __init__(self):
        self._recorder = None

    def capture_begin(self):
        record("HPUGraph.capture_begin")
        self._recorder = _OpRecorder()
        self._recorder.__enter__()

    def capture_end(self):
        self._recorder.__exit__(None, None, None)
        record("HPUGraph.capture_end", ops=len(self._recorder.ops))

    def replay(self):
        record("HPUGraph.replay")
        for func, args, kwargs in self._recorder.ops:
            func(*args, **kwargs)


class Stream:
    pass


@contextmanager
def stream(s):
    record("stream")
    yield
