"""The microbenchmarks explain the end-to-end figure (docs/metrics.md, "Predicted beside measured"):
model.py predicts an end-to-end case from the parts its run measured and splits the gap."""
