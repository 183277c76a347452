"""The study end to end: objectives x seeds -> pretraining, transfer, analysis -> report."""
