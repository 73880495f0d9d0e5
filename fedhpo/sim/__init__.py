"""fedhpo.sim: the PyTorch federated-learning simulator (never imports optuna or plotly)."""
