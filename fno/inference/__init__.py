"""Using a trained model: load, predict, evaluate, export."""
