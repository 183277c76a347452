"""Transfer from frozen or fine-tuned features: linear probe, kNN, fine-tuning, metrics."""
