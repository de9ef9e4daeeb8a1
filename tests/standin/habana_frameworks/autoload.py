"""PyTorch's device-backend autoload entry point (the `torch.backends` entry-point group, PyTorch
2.5 and later): `import torch` calls `__autoload()`, which imports the bridge. As in Gaudi software
1.19, autoload is on unless PT_HPU_LAZY_MODE=1 (lazy mode loads the bridge when the script imports
it), and TORCH_DEVICE_BACKEND_AUTOLOAD=0 turns every autoload off (PyTorch's own switch)."""
import os


def __autoload():
    if os.environ.get("PT_HPU_LAZY_MODE") == "1":
        return
    import habana_frameworks.torch  # noqa: F401
