"""Fleet acceptance (docs/fleet.md): every accelerator judged beside its peers, a known-good baseline
and its own health facts. health.py: the facts and their rules; verdicts.py: pass / warn / fail;
runner.py: the selection on every device at once (`bench fleet`, cli/fleet.py)."""
