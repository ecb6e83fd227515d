"""How work spreads over devices and processes."""
