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


# --- health facts (fleet acceptance). As HLML's types say, the *corrected* ECC error count is not
# supported (HLML_MEMORY_ERROR_TYPE_CORRECTED: "NOT SUPPORTED BY HLML"): asking for it raises, as the
# binding does on HLML_ERROR_NOT_SUPPORTED. Knobs plant faults: STANDIN_HLML_PCIE_GEN (the link's
# generation now; the card can do 5), STANDIN_HLML_UNCORRECTED (uncorrected ECC errors),
# STANDIN_HLML_PENDING_ROWS=1 (a row replacement waiting for the next reset).

class HLMLError(Exception):
    pass


class _PciCaps:
    link_speed = b"32.0GT/s"
    link_width = b"x16"


class _PciInfo:
    caps = _PciCaps()


def hlmlDeviceGetTotalECCErrors(card, error_type, counter_type):
    if error_type == 0:
        raise HLMLError("HLML_ERROR_NOT_SUPPORTED")
    return int(os.environ.get("STANDIN_HLML_UNCORRECTED", "0"))


def hlmlDeviceGetReplacedRowsCount(card, cause):
    return 0


def hlmlDeviceGetReplacedRowsPendingStatus(card):
    return int(os.environ.get("STANDIN_HLML_PENDING_ROWS", "0"))


def hlmlDeviceGetPCIInfo(card):
    return _PciInfo()


def hlmlDeviceGetCurrPCIELinkGeneration(card):
    return int(os.environ.get("STANDIN_HLML_PCIE_GEN", "5"))


def hlmlDeviceGetCurrPCIELinkWidth(card):
    return 16


def hlmlDeviceGetTemperature(card, sensor):
    return 45


def hlmlDeviceGetPersistenceMode(card):
    return 1
