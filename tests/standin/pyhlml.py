"""Stand-in for HLML's Python binding (`habana-pyhlml`), for the HPU backend's tests only: present
when STANDIN_HLML=1, else it is as if the package were not installed. Cards are listed in an order
other than their module IDs (index i holds module COUNT-1-i), as HLML's indices are not module IDs,
and each card's energy counter reads 1000 x (module + 1) mJ, so a test can tell which card was read."""
import os

if os.environ.get("STANDIN_HLML") != "1":
    raise ImportError("stand-in pyhlml is off (STANDIN_HLML=1 turns it on)")

COUNT = int(os.environ.get("STANDIN_HPU_COUNT", "1"))


class _Card:
    def __init__(self, module_id):
        self.module_id = module_id


_CARDS = [_Card(COUNT - 1 - index) for index in range(COUNT)]


def hlmlInit():
    pass


def hlmlDeviceGetCount():
    return COUNT


def hlmlDeviceGetHandleByIndex(index):
    return _CARDS[index]


def hlmlDeviceGetModuleID(card):
    return card.module_id


def hlmlDeviceGetTotalEnergyConsumption(card):
    return 1000 * (card.module_id + 1)


def hlmlDeviceGetPowerUsage(card):
    return 100_000 + card.module_id


def hlmlDeviceGetPowerManagementDefaultLimit(card):
    return 600_000
