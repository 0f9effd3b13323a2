"""Allowlist-first policy: is it safe for an unpickler to import this global?

A pickle can only act through the globals it imports, so the scanner judges every
``module.name`` a pickle names. Denylists are bypassed by the next gadget nobody listed
(see ARTIFACT_THREATS.md), so only globals *known* to be safe are "safe"; known
code-execution and I/O gadgets are "dangerous" (critical); everything else is "unknown"
(high for the standard library, medium for third-party code) and can be allowed by the
user. A user allow entry never upgrades a dangerous global.

Decisions are made from the strings alone: nothing named by a pickle is ever imported.
scikit-learn (a fixed dependency, not user content) is imported once, lazily, to list its
estimator classes.

Choices worth knowing:

- Prefix rule: a submodule of a dangerous module is dangerous (``asyncio.unix_events``),
  and so is ``os.path`` — its functions cannot run code, but a model never needs them and
  a rule without exceptions cannot be argued around.
- Dotted names (``Popen.__init__``, ``collections`` + ``os.system``) are resolved attribute
  by attribute by the unpickler, so a safe module can lead anywhere: a dotted name is safe
  only when listed whole, dangerous when a component names a gadget or a dunder, and
  otherwise unknown (high).
- joblib's ``NDArrayWrapper``/``ZNDArrayWrapper`` (pre-0.10 formats) read a file named in
  the pickle with ``numpy.load(allow_pickle=True)``: nested deserialization, so dangerous.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..findings import Severity

Level = Literal["safe", "dangerous", "unknown"]


@dataclass(frozen=True)
class Verdict:
    level: Level
    severity: Severity
    reason: str


def _names(table: dict[str, str]) -> frozenset[str]:
    return frozenset(f"{mod}.{n}" for mod, names in table.items() for n in names.split())


SAFE = _names({
    "builtins": "int float complex str bytes bytearray list tuple dict set frozenset bool"
                " slice range object memoryview Ellipsis NotImplemented",
    "collections": "OrderedDict defaultdict deque Counter",
    "copyreg": "_reconstructor __newobj__ __newobj_ex__",
    "_codecs": "encode",  # protocol 0-2 write bytes as _codecs.encode(str, 'latin1')
    "codecs": "encode",
    "datetime": "date datetime time timedelta timezone tzinfo",
    "zoneinfo": "ZoneInfo ZoneInfo._unpickle",  # keys are validated: no paths outside tzdata
    "decimal": "Decimal", "fractions": "Fraction", "uuid": "UUID SafeUUID",
    "numpy": "ndarray dtype matrix bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64"
             " float16 float32 float64 longdouble complex64 complex128 clongdouble str_"
             " bytes_ void datetime64 timedelta64 object_ intc uintc"
             " mean median sum prod std var min max amin amax average",
    "numpy.core.multiarray": "_reconstruct scalar",
    "numpy._core.multiarray": "_reconstruct scalar",
    "numpy.core.numeric": "_frombuffer", "numpy._core.numeric": "_frombuffer",
    "numpy._core._internal": "_convert_to_stringdtype_kwargs",
    "numpy.ma.core": "MaskedArray _mareconstruct MaskedConstant",
    "numpy.ma": "MaskedArray",
    "numpy.random._pickle": "__randomstate_ctor __bit_generator_ctor __generator_ctor",
    "numpy.random._mt19937": "MT19937", "numpy.random._pcg64": "PCG64 PCG64DXSM",
    "numpy.random._philox": "Philox", "numpy.random._sfc64": "SFC64",
    "numpy.random.bit_generator": "SeedSequence __pyx_unpickle_SeedSequence",
    "numpy.random.mtrand": "RandomState", "numpy.random._generator": "Generator",
    "scipy.sparse._csr": "csr_matrix csr_array", "scipy.sparse._csc": "csc_matrix csc_array",
    "scipy.sparse._coo": "coo_matrix coo_array", "scipy.sparse._bsr": "bsr_matrix bsr_array",
    "scipy.sparse._dia": "dia_matrix dia_array", "scipy.sparse._lil": "lil_matrix lil_array",
    "scipy.sparse._dok": "dok_matrix dok_array",
    "scipy.interpolate._bsplines": "BSpline",
    "scipy._lib.array_api_compat.numpy._aliases": "asarray",
    "pandas": "DataFrame Series Index RangeIndex MultiIndex DatetimeIndex TimedeltaIndex"
              " PeriodIndex IntervalIndex CategoricalIndex Categorical CategoricalDtype"
              " Interval Timestamp Timedelta Period NA NaT ArrowDtype BooleanDtype"
              " StringDtype SparseDtype PeriodDtype IntervalDtype DatetimeTZDtype"
              " Int8Dtype Int16Dtype Int32Dtype Int64Dtype UInt8Dtype UInt16Dtype"
              " UInt32Dtype UInt64Dtype Float32Dtype Float64Dtype",
    "pandas.arrays": "ArrowExtensionArray ArrowStringArray BooleanArray DatetimeArray"
                     " FloatingArray IntegerArray PeriodArray SparseArray TimedeltaArray"
                     " IntervalArray NumpyExtensionArray StringArray",
    "pandas.core.frame": "DataFrame", "pandas.core.series": "Series",
    "pandas.core.indexes.base": "_new_Index Index",
    "pandas.core.indexes.datetimes": "_new_DatetimeIndex",
    "pandas.core.indexes.interval": "_new_IntervalIndex",
    "pandas.core.indexes.timedeltas": "_new_TimedeltaIndex",
    "pandas.core.indexes.period": "_new_PeriodIndex",
    "pandas.core.internals.managers": "BlockManager SingleBlockManager",
    "pandas.core.internals.blocks": "new_block",
    "pandas._libs.internals": "_unpickle_block",
    "pandas._libs.arrays": "__pyx_unpickle_NDArrayBacked",
    "pandas._libs.sparse": "IntIndex BlockIndex",
    "pandas._libs.tslibs.nattype": "_nat_unpickle",
    "pandas._libs.tslibs.timestamps": "_unpickle_timestamp",
    "pandas._libs.tslibs.timedeltas": "_timedelta_unpickle",
    "pandas._libs.tslibs.offsets": "Day Hour Minute Second Milli Micro Nano BusinessDay"
                                   " MonthEnd MonthBegin YearEnd YearBegin Week QuarterEnd",
    "pyarrow": "NA",
    "pyarrow.lib": "_restore_array py_buffer type_for_alias",
    "joblib.numpy_pickle": "NumpyArrayWrapper",
    "sklearn._loss._loss": "CyHalfSquaredError CyAbsoluteError CyPinballLoss CyHuberLoss"
                           " CyHalfPoissonLoss CyHalfGammaLoss CyHalfTweedieLoss"
                           " CyHalfTweedieLossIdentity CyHalfBinomialLoss CyExponentialLoss"
                           " CyHalfMultinomialLoss __pyx_unpickle_CyHalfMultinomialLoss",
    "sklearn._loss.link": "IdentityLink LogLink LogitLink HalfLogitLink MultinomialLogit"
                          " Interval",
    "sklearn._loss.loss": "HalfSquaredError AbsoluteError PinballLoss HuberLoss"
                          " HalfPoissonLoss HalfGammaLoss HalfTweedieLoss HalfBinomialLoss"
                          " HalfTweedieLossIdentity ExponentialLoss HalfMultinomialLoss",
    "sklearn.tree._tree": "Tree", "sklearn.tree._utils": "WeightedPQueue",
    "sklearn.ensemble._hist_gradient_boosting.predictor": "TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning": "_BinMapper",
    "sklearn.ensemble._gb": "_init_raw_predictions",
    "sklearn.neighbors._kd_tree": "KDTree newObj", "sklearn.neighbors._ball_tree": "BallTree newObj",
    "sklearn.metrics._dist_metrics": "newObj EuclideanDistance64 EuclideanDistance32"
                                     " ManhattanDistance64 MinkowskiDistance64",
    "sklearn.calibration": "_CalibratedClassifier _SigmoidCalibration",
    "sklearn.cluster._birch": "_CFNode _CFSubcluster",
    "sklearn.cluster._bisect_k_means": "_BisectingTree",
    "sklearn.gaussian_process._gpc": "_BinaryGaussianProcessClassifierLaplace",
    "sklearn.gaussian_process.kernels": "ConstantKernel RBF Product Sum WhiteKernel Matern"
                                        " RationalQuadratic ExpSineSquared DotProduct"
                                        " Exponentiation PairwiseKernel Hyperparameter",
    "sklearn.linear_model._sgd_fast": "Hinge Log SquaredLoss Huber ModifiedHuber"
                                      " SquaredHinge EpsilonInsensitive"
                                      " SquaredEpsilonInsensitive",
    "sklearn.neural_network._stochastic_optimizers": "AdamOptimizer SGDOptimizer",
    "sklearn.feature_selection._univariate_selection": "f_classif f_regression chi2",
    "sklearn.model_selection._split": "KFold StratifiedKFold GroupKFold ShuffleSplit"
                                      " StratifiedShuffleSplit TimeSeriesSplit",
    "sklearn.utils._bunch": "Bunch",
    "sklearn.utils.validation": "check_array",
    "sklearn.cluster._kmeans": "_kmeans_single_lloyd _kmeans_single_elkan",
    "sklearn.metrics._scorer": "_PassthroughScorer _Scorer _MultimetricScorer",
    "sklearn.metrics._classification": "accuracy_score balanced_accuracy_score f1_score"
                                       " fbeta_score precision_score recall_score log_loss"
                                       " matthews_corrcoef jaccard_score",
    "sklearn.metrics._regression": "mean_squared_error mean_absolute_error r2_score"
                                   " median_absolute_error explained_variance_score",
    "sklearn.metrics._ranking": "roc_auc_score average_precision_score",
    "torch": "Size Tensor float32 float64 float16 bfloat16 int8 int16 int32 int64 uint8"
             " bool complex64 complex128 strided sparse_coo contiguous_format"
             " channels_last preserve_format FloatStorage DoubleStorage HalfStorage"
             " BFloat16Storage LongStorage IntStorage ShortStorage CharStorage ByteStorage"
             " BoolStorage ComplexFloatStorage ComplexDoubleStorage",
    "torch._utils": "_rebuild_tensor _rebuild_tensor_v2 _rebuild_parameter"
                    " _rebuild_parameter_with_state _rebuild_sparse_tensor"
                    " _rebuild_meta_tensor_no_storage _rebuild_qtensor",
    "torch._tensor": "_rebuild_from_type_v2",
    "torch.nn.parameter": "Parameter",
    "torch.storage": "TypedStorage UntypedStorage _TypedStorage",
    "torch.serialization": "_get_layout",
})
# torch.serialization is dangerous as a module, but _get_layout only maps a string to a
# layout constant; listing it exactly keeps ordinary checkpoints clean.
SAFE_OVER_DANGEROUS = frozenset({"torch.serialization._get_layout"})

DANGEROUS_MODULES = frozenset("""
os posix nt subprocess _posixsubprocess pty asyncio multiprocessing _multiprocessing
runpy code codeop importlib pkgutil pydoc inspect marshal types ctypes _ctypes socket
_socket ssl _ssl http urllib urllib2 httplib requests aiohttp httpx xmlrpc smtplib ftplib
telnetlib poplib nntplib imaplib webbrowser linecache timeit cProfile profile pdb bdb
trace doctest idlelib lib2to3 ensurepip pip _osx_support _aix_support _pyrepl mailcap
shutil tempfile sys site atexit signal gc threading _thread io _io logging pickle _pickle
cPickle dill cloudpickle shelve dbm jsonpickle operator _operator functools platform
zipfile tarfile zipimport mmap fileinput distutils setuptools _winapi msvcrt winreg
numpy.ctypeslib numpy.f2py numpy.testing numpy.distutils
numpy.lib._npyio_impl numpy.lib.npyio numpy.lib.format numpy.lib._datasource
numpy._core.memmap numpy.core.memmap
pandas.io pandas.core.computation pandas.testing pandas._testing pandas.util._tester
joblib.numpy_pickle_compat joblib.externals joblib._memmapping_reducer
sklearn.utils._testing sklearn.datasets sklearn.externals
torch.serialization torch._dynamo torch._inductor torch.jit torch.utils._config_module
torch.utils.collect_env torch.utils.bottleneck torch.utils.cpp_extension torch.hub
torch.package torch.fx torch.distributed torch.multiprocessing torch.testing
torch.library torch.classes torch._classes torch.ops
""".split())

# Names that run code, open files or deserialize wherever they live (re-exports included).
GADGET_NAMES = frozenset("""
eval exec execfile compile __import__ getattr setattr delattr globals locals vars open
breakpoint input help exit quit __build_class__ system popen popen2 popen3 spawnl spawnv
execv execve execvp fork_exec load loads read_pickle run_path run_module _run_code
import_module resolve_name locate attrgetter itemgetter methodcaller partial reduce
getattr_static fromfile memmap loadtxt genfromtxt DataSource _load_from_bytes
_get_command_stdout call check_call check_output Popen getoutput getstatusoutput
""".split())
_GADGET_EXACT = _names({
    "uuid": "_get_command_stdout _popen _ifconfig_getnode _ip_getnode _arp_getnode"
            " _netstat_getnode _lanscan_getnode _find_mac_near_keyword _find_mac_under_heading",
    "codecs": "open EncodedFile StreamReaderWriter",
    "gzip": "open GzipFile", "bz2": "open BZ2File", "lzma": "open LZMAFile",
    "numpy": "load save savez savez_compressed savetxt fromfile memmap loadtxt genfromtxt"
             " fromregex DataSource __config__",
    "pandas": "eval read_pickle", "joblib": "load dump Memory Parallel",
    "joblib.numpy_pickle": "load dump _unpickle", "torch": "load save",
    "torch.storage": "_load_from_bytes",
})
_DUNDER_SAFE = frozenset({"__newobj__", "__newobj_ex__"})
_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg", "exceptions": "builtins"}

_TRUST_HINT = ("if you trust this class, allow it with --allow {g} or `model: {{allow: [{g}]}}`"
               " in the spec")


def _prefixes(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _data_lines(name: str) -> list[str]:
    from importlib.resources import files

    text = files("mlwarden.scan").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@functools.cache
def _sklearn_estimators() -> frozenset[str]:
    """``module.qualname`` of every public scikit-learn estimator (a static list: importing all
    of sklearn to enumerate them would cost seconds per scan; see scripts/gen_sklearn_allowlist.py)."""
    return frozenset(_data_lines("allowlist_sklearn.txt"))


@functools.cache
def _torch_layers() -> frozenset[str]:
    """Standard ``torch.nn`` layer classes and tensor rebuild helpers that a full-module
    ``torch.save`` needs (a static list; see scripts/gen_torch_allowlist.py)."""
    return frozenset(_data_lines("allowlist_torch.txt"))


@dataclass(frozen=True)
class ArgRef:
    """What an allowlisted callable calls: ``args[index]``, or ``getattr(args[index], attr)``.

    ``attr`` is ``"*"`` when the attribute's name is computed. For a class, ``args`` are
    those its constructor receives; for a ``Class.__setstate__`` entry, index 0 is the state.
    """

    index: int
    attr: str | None = None


@functools.cache
def _trampoline_table() -> dict[str, tuple[ArgRef, ...]]:
    table: dict[str, tuple[ArgRef, ...]] = {}
    for line in _data_lines("trampolines.txt"):
        name, _, refs = line.partition("\t")
        table[name] = tuple(
            ArgRef(int(idx), attr or None)
            for idx, _, attr in (ref.partition(".") for ref in refs.split())
        )
    return table


def trampolines(full_name: str) -> tuple[ArgRef, ...]:
    """The arguments the allowlisted callable ``full_name`` calls (empty: it calls none).

    Such a callable is only admitted together with what it calls: the called argument must
    itself be admitted. The table is derived from the callables' code by
    scripts/gen_trampolines.py and read lazily from scan/trampolines.txt, so deciding never
    imports pandas or torch.
    """
    module, _, name = full_name.rpartition(".")
    module = _ALIASES.get(module, module)
    return _trampoline_table().get(f"{module}.{name}", ())


class Policy:
    """Classify ``module.name`` globals; ``allow`` adds ``module.name`` or ``module.*`` entries."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        entries = [a.strip() for a in allow if a and a.strip()]
        self.allow_exact = frozenset(a for a in entries if not a.endswith(".*"))
        self.allow_modules = frozenset(a[:-2] for a in entries if a.endswith(".*"))

    def classify(self, module: str, name: str) -> Verdict:
        module = _ALIASES.get(module, module)
        full = f"{module}.{name}"
        danger = _danger(module, name, full)
        if danger is not None:
            if full in self.allow_exact or self._module_allowed(module):
                danger += "; it is on the allowlist but is a known code-execution gadget,"\
                          " and an allow entry never makes a gadget safe"
            return Verdict("dangerous", _danger_severity(module), danger)
        if full in SAFE or full in SAFE_OVER_DANGEROUS or (
            module.startswith("sklearn.") and "." not in name and full in _sklearn_estimators()
        ) or (module.startswith("torch.") and "." not in name and full in _torch_layers()):
            return Verdict("safe", Severity.INFO, f"{full} is on mlwarden's allowlist")
        if full in self.allow_exact or self._module_allowed(module):
            return Verdict("safe", Severity.INFO, f"{full} is allowed by the user")
        hint = _TRUST_HINT.format(g=full)
        if "." in name:
            return Verdict("unknown", Severity.HIGH,
                           f"{full} reaches an attribute through {module}.{name.split('.')[0]};"
                           f" a dotted name can lead anywhere, so it is never assumed safe; {hint}")
        top = module.split(".")[0]
        if top == "__main__":
            return Verdict("unknown", Severity.HIGH,
                           f"{full} lives in the loading program's __main__, which can hold"
                           f" anything that program imported; re-save the model with the class"
                           f" in an importable module; {hint}")
        if top in sys.stdlib_module_names:
            return Verdict("unknown", Severity.HIGH,
                           f"{full} is a standard-library global that is not known to be safe"
                           f" to import while unpickling; {hint}")
        return Verdict("unknown", Severity.MEDIUM,
                       f"{full} is not on mlwarden's allowlist of globals known to be safe"
                       f" to unpickle; {hint}")

    def _module_allowed(self, module: str) -> bool:
        return any(p in self.allow_modules for p in _prefixes(module))


def _danger_severity(module: str) -> Severity:
    # Pre-0.10 joblib wrappers are nested deserialization, but in files that are merely old.
    return Severity.HIGH if module == "joblib.numpy_pickle_compat" else Severity.CRITICAL


def _danger(module: str, name: str, full: str) -> str | None:
    """Why ``module.name`` is a known gadget, or None."""
    if full in SAFE_OVER_DANGEROUS:
        return None
    if not module or not name or any(not p for p in module.split(".") + name.split(".")):
        return f"{full!r} is malformed (empty module or name component); it cannot be vetted"
    for p in _prefixes(module):
        if p in DANGEROUS_MODULES:
            return f"{full} comes from {p}, a module of code-execution, I/O or" \
                   f" deserialization gadgets"
    if full in _GADGET_EXACT or (module == "pandas" and name.startswith(("read_", "to_"))):
        return f"{full} is a known code-execution, file or deserialization gadget"
    if module == "builtins" and name in GADGET_NAMES:
        return f"{full} is a known code-execution gadget"
    parts = name.split(".")
    for part in parts:
        if part.startswith("__") and part.endswith("__") and part not in _DUNDER_SAFE:
            return f"{full} reaches the interpreter internals through {part!r}"
        if part in GADGET_NAMES:
            return f"{full} names {part!r}, a code-execution or deserialization gadget," \
                   f" re-exported through {module}"
        if part in _DANGEROUS_TOPS:
            return f"{full} reaches the {part!r} module through {module}"
    return None


_DANGEROUS_TOPS = frozenset(m for m in DANGEROUS_MODULES if "." not in m) - {"io", "code"}
