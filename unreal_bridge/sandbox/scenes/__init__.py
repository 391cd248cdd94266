"""Scene generators: one module per family, each ``build_<family>(seed) -> Layout``."""
