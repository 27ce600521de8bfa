"""numba's on-disk cache for :mod:`ncf.train.kernels`, with a first tier compiled when the package is built.

Why: numba's ``cache=True`` compiles each kernel on its first call (~11 s for all of them here)
and keeps the result in ``__pycache__`` beside the source or, where that is read-only, in a
per-user folder (``~/.cache/numba``, or ``$NUMBA_CACHE_DIR``). Nothing fills either after
``pip install .``, a wheel or a read-only site-packages, so the user's first fit paid the compile.

How: building the package (``setup.py``'s ``build_py``: ``pip install .``, ``pip wheel``,
``pip install -e .``) imports the built kernels in a fresh interpreter with :data:`BUILD_ENV`
set and calls :func:`ncf.train.kernels.warmup`, which compiles every kernel for the trainer's
signatures into :data:`SHIPPED_DIR` (``ncf/train/_numba_cache``), a folder that ships inside
the package (for ``-e``, beside the sources). At run time each kernel's :class:`KernelCache` loads from
that folder first and never writes to it; a signature it lacks is compiled and saved by numba's
own rules (``$NUMBA_CACHE_DIR``, else a writable ``__pycache__``, else ``~/.cache/numba``), and
where nothing is writable the kernel is compiled for the process only: a miss is never an error.

What a shipped entry is valid for; numba checks each, and a mismatch is a miss:

* the numba version (the index file's header);
* the Python version (``py311`` and the ABI flags in the file names);
* the CPU: LLVM's target triple, CPU name and feature string are part of the index key, so a
  wheel carried to another CPU model compiles once on first use, into the user's cache;
* the function's bytecode and closure (the index key);
* the source file: here by its content hash. numba 0.59 stamps its own tier with the file's
  mtime and size, which an install rewrites (numba/numba#10659 moved numba to content hashes
  too; 0.68 has them).

numba has no per-function cache hook (``cache=True`` only builds its ``FunctionCache``), so
:func:`cached_njit` sets the dispatcher's cache the way ``Dispatcher.enable_caching`` does.
This module uses ``numba.core.caching``'s internals (``_CacheLocator``, ``CacheImpl``'s
``_locator_classes``, ``IndexDataCacheFile``, ``Cache._index_key``), the same from numba 0.59
(the oldest the package allows) to 0.68; should they change, :mod:`ncf.train.kernels` falls
back to numba's plain ``cache=True``.

Alternatives we rejected: warming numba's cache from the Makefile (``make`` did it, but
``pip install .`` and wheels do not run it); one locator returning the shipped folder (numba
loads and saves through one folder, so a new signature in a read-only install would fail to
save and raise); copying the shipped files into the user's cache on import (files written on
every fresh machine, and a second copy to keep fresh). The wheel stays ``py3-none-any``: on
another Python, numba or CPU the shipped entries are simply not used.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numba
from numba.core import caching

__all__ = ["BUILD_ENV", "SHIPPED_DIR", "KernelCache", "cached_njit"]

SHIPPED_DIR = Path(__file__).with_name("_numba_cache")  #: the kernels compiled when the package was built
BUILD_ENV = "NCF_KERNEL_CACHE_BUILD"  #: "1" while setup.py compiles into :data:`SHIPPED_DIR`


@functools.cache
def source_hash(path: str) -> str:
    """The sha256 of a source file's bytes: the shipped tier's freshness stamp (an install rewrites mtimes)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _ShippedLocator(caching._CacheLocator):
    """:data:`SHIPPED_DIR`, stamped by content hash. At run time it is numba's last resort, when
    nothing else is writable (a read-only install and home): loaded from, never written to."""

    writable = False

    def __init__(self, py_func: Any, py_file: str) -> None:
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno

    def ensure_cache_path(self) -> None:
        if not self.writable:
            raise OSError(f"{SHIPPED_DIR} holds the kernels compiled at build time and is not written at run time")
        super().ensure_cache_path()

    def get_cache_path(self) -> str:
        return str(SHIPPED_DIR)

    def get_source_stamp(self) -> str:
        return source_hash(self._py_file)

    def get_disambiguator(self) -> str:
        return str(self._lineno)  # as numba's own locators: the file names match across tiers

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> _ShippedLocator | None:
        return cls(py_func, py_file) if os.path.exists(py_file) else None


class _BuildLocator(_ShippedLocator):
    """:data:`SHIPPED_DIR`, written: the only locator while the package is built."""

    writable = True


class _RunImpl(caching.CompileResultCacheImpl):
    _locator_classes = [*caching.CompileResultCacheImpl._locator_classes, _ShippedLocator]


class _BuildImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_BuildLocator]


class KernelCache(caching.FunctionCache):
    """numba's per-function cache with :data:`SHIPPED_DIR` as a read-only first tier.

    ``shipped_hits`` counts, per signature, the loads that came from the shipped tier (numba's
    ``dispatcher.stats.cache_hits`` counts every load, from either tier). With
    :data:`BUILD_ENV` set, the shipped folder is the only tier and is written.
    """

    def __init__(self, py_func: Any) -> None:
        building = os.environ.get(BUILD_ENV) == "1"
        self._impl_class = _BuildImpl if building else _RunImpl
        super().__init__(py_func)
        self.shipped_path = str(SHIPPED_DIR)
        self.shipped_hits: Counter = Counter()
        self._shipped = None
        if not building:
            stamp = source_hash(inspect.getfile(py_func))
            self._shipped = caching.IndexDataCacheFile(self.shipped_path, self._impl.filename_base, stamp)

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        if self._shipped is not None and self._enabled:
            target_context.refresh()
            data = self._shipped.load(self._index_key(sig, target_context.codegen()))
            if data is not None:
                self.shipped_hits[sig] += 1
                return self._impl.rebuild(target_context, data)
        return super().load_overload(sig, target_context)

    def save_overload(self, sig: Any, data: Any) -> None:
        try:
            super().save_overload(sig, data)
        except OSError as e:  # nowhere writable: the kernel stays compiled for this process only
            caching._cache_log("[cache] not saved (%s)", e)


def cached_njit(f: Any, **options: Any) -> Any:
    """``numba.njit(cache=True, **options)(f)``, cached through :class:`KernelCache`."""
    dispatcher = numba.njit(**options)(f)
    try:
        dispatcher._cache = KernelCache(f)  # what Dispatcher.enable_caching does, with our cache class
    except RuntimeError:  # no locator at all (NUMBA_CACHE_LOCATOR_CLASSES names none that fits)
        pass  # compiled per process
    return dispatcher
