"""playmill: action-annotated gameplay video for interactive world models.

The command line is ``playmill`` (:mod:`playmill.cli`); pipeline.yaml is read by :mod:`playmill.config` and
its stages run by :mod:`playmill.stages`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
