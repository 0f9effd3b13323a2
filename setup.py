"""Build glue: compile the pickle machine's modules with Cython, as an optional speed-up.

Everything else about the package is declared in pyproject.toml. The modules named in
``mlwarden.scan.compiled.MODULES`` are compiled from their own ``.py`` files (one source);
the build records each source's SHA-256 beside the extensions, and the package uses an
extension only while that record matches the source. A missing Cython, a missing compiler
or a failed compile leaves the pure-Python modules in place: installing never fails
for the sake of the speed-up.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SCAN = Path("src") / "mlwarden" / "scan"


def _switch():  # the module list lives in one place: the runtime switch itself (stdlib-only)
    spec = importlib.util.spec_from_file_location("_mlwarden_scan_compiled", SCAN / "compiled.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


switch = _switch()
SOURCES = {f"mlwarden.scan.{m}": SCAN / f"{m}.py" for m in switch.MODULES}
DIRECTIVES = {
    "language_level": 3,
    # Argument annotations stay Python hints: the compiled module accepts whatever the pure
    # one does. The loop's C types come from its @cython.locals declarations.
    "annotation_typing": False,
}


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        self.built: set[str] = set()
        try:
            from Cython.Build import cythonize

            for ext in self.extensions:  # keep setuptools' own Extension objects: C sources only
                # force: regenerate the C from the source hashed below, never trust mtimes
                (c_ext,) = cythonize([Extension(ext.name, list(ext.sources))], quiet=True, force=True,
                                     compiler_directives=DIRECTIVES, build_dir="build/cython")
                ext.sources = c_ext.sources
            super().run()
        except Exception as e:  # noqa: BLE001 — no Cython or no compiler: the pure modules stay
            self.warn(f"mlwarden: the pickle machine stays pure Python ({type(e).__name__}: {e})")
        self._stamp()

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
            self.built.add(ext.name)
        except Exception as e:  # noqa: BLE001
            self.warn(f"mlwarden: {ext.name} stays pure Python ({type(e).__name__}: {e})")

    def _stamp(self) -> None:
        lines = []
        for name, src in SOURCES.items():
            if name in self.built:  # compiled now from the C file cythonize just made
                lines.append(f"{name.rpartition('.')[2]} {switch.source_digest(src)}\n")
            else:  # whatever extension is there came from some other source: never use it
                Path(self.get_ext_fullpath(name)).unlink(missing_ok=True)
        stamp = Path(self.get_ext_fullpath(next(iter(SOURCES)))).parent / switch.STAMP
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text("".join(lines), encoding="ascii")


setup(
    ext_modules=[Extension(name, [str(src)], optional=True) for name, src in SOURCES.items()],
    cmdclass={"build_ext": OptionalBuildExt},
)
