"""Engines run the checks' folds over partitions: locally (streaming) or on Dask."""

from __future__ import annotations

from .base import Engine


def make_engine(name: str, *, scheduler: str | None = None, workers: int | None = None) -> Engine:
    """The engine called ``name`` ("local" or "dask"); Dask loads only when asked for."""
    if name == "local":
        if scheduler:
            from ..errors import EngineError

            raise EngineError("--scheduler needs --engine dask")
        from .local import LocalEngine

        return LocalEngine(workers=workers)
    if name == "dask":
        from .dask import DaskEngine

        return DaskEngine(scheduler=scheduler, workers=workers)
    from ..errors import EngineError

    raise EngineError(f"unknown engine {name!r}; use --engine local or --engine dask")


__all__ = ["Engine", "make_engine"]
