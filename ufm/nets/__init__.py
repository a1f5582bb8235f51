"""Small networks (equinox) shared by the trained-network systems."""
