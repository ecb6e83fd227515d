"""Neural operators: spectral layers and the FNO models built from them."""
