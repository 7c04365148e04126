"""The evaluator: replay a bag under cloud-latency traces and score every strategy."""
