import sys
from pathlib import Path

import pytest
import torch

from accelbench import SCHEMA_VERSION
from accelbench.backends.cpu import CpuBackend
from accelbench.harness import RunOptions, Runner
from accelbench.records import RunInfo
from accelbench.store import RunWriter, utc_now
from accelbench.timing import TimingPolicy

REPO = Path(__file__).resolve().parents[1]
FAST_POLICY = TimingPolicy(warmup_s=0.0, warmup_min_iters=1, min_samples=3, max_samples=20,
                           min_time_s=0.0, max_time_s=0.2)


def make_info(run_id: str = "test-run", **overrides) -> RunInfo:
    fields = dict(schema_version=SCHEMA_VERSION, run_id=run_id, status="running", started_at=utc_now(),
                  backend="cpu", device_name="test CPU", device_count=1, host="h", accelbench_version="0",
                  commit=None, argv=["bench", "run"], suite="quick")
    fields.update(overrides)
    return RunInfo(**fields)


@pytest.fixture
def cpu_backend():
    torch.manual_seed(0)
    return CpuBackend()


@pytest.fixture
def make_runner(tmp_path):
    def factory(backend, energy=False, **option_overrides):
        writer = RunWriter(tmp_path / f"run{len(list(tmp_path.iterdir()))}", make_info())
        options = RunOptions(policy=FAST_POLICY, energy=energy, **option_overrides)
        return Runner(backend, writer, options)
    return factory


def bench_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "accelbench", *args]


class _OpRecorder:
    """Records the aten ops dispatched while active, to re-issue them: a CPU stand-in for a
    device graph (replay repeats the captured kernels on the captured buffers, nothing else)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        ops = self.ops = []

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                out = func(*args, **kwargs)
                ops.append((func, args, kwargs, out))
                return out

        self.mode = Mode()

    def replay(self):
        # As a device graph does, every op writes where it wrote at capture: a later op reads the
        # captured buffer, so each new result is copied into it.
        for func, args, kwargs, captured in self.ops:
            new = func(*args, **kwargs)
            for old, fresh in zip(*(x if isinstance(x, (tuple, list)) else (x,) for x in (captured, new))):
                if isinstance(old, torch.Tensor) and fresh is not old and old.shape == fresh.shape:
                    old.copy_(fresh)


class GraphCpuBackend(CpuBackend):
    """The CPU backend with graph replay, for testing how the harness chooses and checks graphs."""

    def features(self):
        return super().features() | {"graphs"}

    def capture_graph(self, fn):
        from accelbench.backends.base import CapturedGraph
        recorder = _OpRecorder()
        with recorder.mode:
            output = fn()
        return CapturedGraph(recorder.replay, output)


@pytest.fixture
def graph_backend():
    torch.manual_seed(0)
    return GraphCpuBackend()


def save_checkpoint(directory, config, weights):
    """A Hugging Face style checkpoint folder: config.json and one model.safetensors."""
    import json
    from safetensors.torch import save_file
    from accelbench.e2e.decode.weights import hf_config_dict
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(hf_config_dict(config)))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(directory / "model.safetensors"))


# Tests of the device code (tests/gpu/: the Triton and Gluon kernels) are marked `gpu`: run them on a
# GPU machine with `python -m pytest -m gpu`. Without a CUDA device they are skipped, saying why.
GPU_TESTS = REPO / "tests" / "gpu"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(GPU_TESTS):
            item.add_marker(pytest.mark.gpu)
            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU: run `python -m pytest -m gpu` on one"))
