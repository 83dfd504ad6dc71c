"""The forests compiled to native code: C generated from the exported trees (`model.c`, part of
the signed serving folder and pinned by the manifest), built once into a shared library and
called through `ctypes`. The same leaves as walking the trees (`model.Forest`), the same sums
to within the reference tolerance, at a fraction of numpy's cost for a single row and a batch.

The C holds data, not code: each forest's node arrays as static constants and one evaluator
that walks every tree for a block of rows at a time (the block's features stay in cache while
the trees go by), with the leaf self-loops of `Forest`, so every walk takes `depth` steps and
no branch depends on the data. A compiler builds it (`-O3`: measured 1.7x faster than `-O2` on
the default champion's 918 trees) in under a second; the image builds it while the image is
built (a build stage has the compiler, the image does not).

`NativeModel.load` gives the model with native forests when a library could be built or was
given, and says why not otherwise: the caller keeps the numpy model, which predicts the same.
A library is used only once it reproduces the reference rows (`load_artifact` checks them with
whatever forests the model has), and its source must be the one the manifest pins.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from insurance_pipeline.compiled.model import CompiledModel, Forest, Regressor

SOURCE_FILE = "model.c"
LIBRARY_NAME = "model-native.so"
BLOCK_ROWS = 64  # rows walked together through each tree
LANES = 8  # of which this many step through a tree in lockstep (independent loads overlap)
COMPILE_SECONDS = 120
RELEASE_ROWS = 16  # from this many rows the C runs without the GIL (batches, model threads)

_TYPES = """
typedef struct {
  const int32_t *feature; const double *threshold; const int32_t *children;
  const double *value; const int32_t *roots; int32_t trees; int32_t depth;
  int32_t float32_sum; double base;
} forest_t;
"""

_FUNCTIONS = """
int32_t native_forests(void) { return N_FORESTS; }

/* One row through every tree, LANES trees in lockstep (their loads overlap). */
static void one_row(const forest_t *f, const double *x, double *sum, float *sum32) {
  int32_t t = 0;
  for (; t + LANES <= f->trees; t += LANES) {
    int32_t n[LANES];
    for (int k = 0; k < LANES; ++k) n[k] = f->roots[t + k];
    for (int32_t d = 0; d < f->depth; ++d)
      for (int k = 0; k < LANES; ++k)
        n[k] = f->children[2 * n[k] + (x[f->feature[n[k]]] > f->threshold[n[k]])];
    for (int k = 0; k < LANES; ++k) {  /* in tree order: XGBoost's float32 sum is ordered */
      if (f->float32_sum) *sum32 = *sum32 + (float)f->value[n[k]];
      else *sum += f->value[n[k]];
    }
  }
  for (; t < f->trees; ++t) {
    int32_t n = f->roots[t];
    for (int32_t d = 0; d < f->depth; ++d)
      n = f->children[2 * n + (x[f->feature[n]] > f->threshold[n])];
    if (f->float32_sum) *sum32 = *sum32 + (float)f->value[n];
    else *sum += f->value[n];
  }
}

/* A block of rows through every tree, LANES rows in lockstep, one tree at a time (its nodes
   stay in cache while the block goes by). */
static void block_of_rows(const forest_t *f, const double *x, int64_t block, int64_t width,
                          double *sum, float *sum32) {
  for (int32_t t = 0; t < f->trees; ++t) {
    int32_t root = f->roots[t];
    int64_t r = 0;
    for (; r + LANES <= block; r += LANES) {
      int32_t n[LANES];
      for (int k = 0; k < LANES; ++k) n[k] = root;
      for (int32_t d = 0; d < f->depth; ++d)
        for (int k = 0; k < LANES; ++k)
          n[k] = f->children[2 * n[k] + (x[(r + k) * width + f->feature[n[k]]]
                                          > f->threshold[n[k]])];
      for (int k = 0; k < LANES; ++k) {
        if (f->float32_sum) sum32[r + k] = sum32[r + k] + (float)f->value[n[k]];
        else sum[r + k] += f->value[n[k]];
      }
    }
    for (; r < block; ++r) {
      int32_t n = root;
      for (int32_t d = 0; d < f->depth; ++d)
        n = f->children[2 * n + (x[r * width + f->feature[n]] > f->threshold[n])];
      if (f->float32_sum) sum32[r] = sum32[r] + (float)f->value[n];
      else sum[r] += f->value[n];
    }
  }
}

/* out[r]: the sum of the leaves row r reaches (float32_sum: base + leaves summed in float32,
   tree by tree, as XGBoost does). `wide` holds `rows` rows of `width` features. */
int32_t native_sums(int32_t index, const double *wide, int64_t rows, int64_t width,
                    double *out) {
  if (index < 0 || index >= N_FORESTS) return -1;
  const forest_t *f = &FORESTS[index];
  double sum[BLOCK_ROWS];
  float sum32[BLOCK_ROWS];
  for (int64_t start = 0; start < rows; start += BLOCK_ROWS) {
    int64_t block = rows - start < BLOCK_ROWS ? rows - start : BLOCK_ROWS;
    const double *x = wide + start * width;
    for (int64_t r = 0; r < block; ++r) { sum[r] = 0.0; sum32[r] = (float)f->base; }
    if (block < LANES)
      for (int64_t r = 0; r < block; ++r) one_row(f, x + r * width, &sum[r], &sum32[r]);
    else
      block_of_rows(f, x, block, width, sum, sum32);
    for (int64_t r = 0; r < block; ++r)
      out[start + r] = f->float32_sum ? (double)sum32[r] : sum[r];
  }
  return 0;
}
"""


class NativeUnavailable(RuntimeError):
    """No native library for this model: the reason (the numpy forests serve)."""


def forests_of(model: CompiledModel) -> list[Forest]:
    """Every forest of the model, in the order the C source numbers them."""
    found = list(model.regressor.forests)
    if model.interval is not None:
        found += list(model.interval.scale.forests)
    return found


def _double(value: float) -> str:
    """A C literal of exactly this double (repr round-trips; infinities are HUGE_VAL)."""
    if value != value:
        return "NAN"
    if value in (float("inf"), float("-inf")):
        return "HUGE_VAL" if value > 0 else "-HUGE_VAL"
    return repr(value)


def _array(kind: str, name: str, values) -> str:
    body = ",".join(_double(float(v)) if kind == "double" else str(int(v)) for v in values)
    return f"static const {'double' if kind == 'double' else 'int32_t'} {name}[] = {{{body or 0}}};"


def c_source(model: CompiledModel) -> str:
    """The C source of the model's forests (deterministic: the same model, the same text)."""
    lines = ["/* Generated by insurance_pipeline.compiled.native: the model's forests. */"]
    lines += ["#include <math.h>", "#include <stdint.h>", f"#define BLOCK_ROWS {BLOCK_ROWS}"]
    lines.append(f"#define LANES {LANES}")
    lines.append(_TYPES)
    entries = []
    for i, forest in enumerate(forests_of(model)):
        lines += [
            _array("int", f"f{i}_feature", forest.feature),
            _array("double", f"f{i}_threshold", forest.threshold),
            _array("int", f"f{i}_children", forest.children.reshape(-1)),
            _array("double", f"f{i}_value", forest.value),
            _array("int", f"f{i}_roots", forest.roots),
        ]
        entries.append(
            f"{{f{i}_feature, f{i}_threshold, f{i}_children, f{i}_value, f{i}_roots, "
            f"{len(forest.roots)}, {forest.depth}, {int(forest.float32_sum)}, "
            f"{_double(float(forest.base))}}}"
        )
    lines.append(f"#define N_FORESTS {len(entries)}")
    table = ", ".join(entries) or "{0}"
    lines.append(f"static const forest_t FORESTS[{max(len(entries), 1)}] = {{{table}}};")
    return "\n".join(lines) + _FUNCTIONS


def compiler() -> str | None:
    """A C compiler on this machine (CC, else cc or gcc), or None."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def build(source: Path, dest: Path) -> Path:
    """`source` compiled into the shared library `dest` (made private: mode 0700 folder)."""
    cc = compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler (cc or gcc) on this machine")
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = [cc, "-O3", "-std=c99", "-shared", "-fPIC", "-o", str(dest), str(source)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMPILE_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NativeUnavailable(f"{cc} could not build {source.name}: {error}") from None
    if done.returncode != 0:
        raise NativeUnavailable(f"{cc} failed on {source.name}: {done.stderr.strip()[-500:]}")
    return dest


class NativeLibrary:
    """The built library, through ctypes (which releases the GIL while the C runs)."""

    def __init__(self, path: Path):
        try:
            self._lib = ctypes.CDLL(str(path))
            # the same function, called holding the GIL: a few rows take microseconds, and
            # giving the GIL away for them lets another thread keep it for milliseconds
            self._held = ctypes.PyDLL(str(path)).native_sums
            self._released = self._lib.native_sums
        except (OSError, AttributeError) as error:
            raise NativeUnavailable(f"{path.name} cannot be loaded: {error}") from None
        for function in (self._held, self._released):
            function.argtypes = [
                ctypes.c_int32,
                ctypes.c_void_p,
                ctypes.c_int64,
                ctypes.c_int64,
                ctypes.c_void_p,
            ]
            function.restype = ctypes.c_int32
        self.forests = int(self._lib.native_forests())
        self.path = path

    def sums(self, index: int, wide: np.ndarray) -> np.ndarray:
        wide = np.ascontiguousarray(wide, dtype=np.float64)
        out = np.empty(len(wide))
        function = self._held if len(wide) < RELEASE_ROWS else self._released
        status = function(index, wide.ctypes.data, len(wide), wide.shape[1], out.ctypes.data)
        if status != 0:
            raise RuntimeError(f"{self.path.name}: no forest {index}")
        return out


@dataclass(frozen=True, eq=False)
class NativeForest(Forest):
    """A `Forest` whose walk runs in the library (the arrays stay for `decisions` and tests)."""

    library: NativeLibrary | None = None
    index: int = 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        sums = self.library.sums(self.index, np.hstack([X, X.astype(np.float32)]))
        return self._finish(sums)

    def predict_row(self, x: np.ndarray) -> float:
        wide = np.concatenate((x, x.astype(np.float32)))[None, :]
        return float(self._finish(self.library.sums(self.index, wide))[0])

    def _finish(self, sums: np.ndarray) -> np.ndarray:
        if self.float32_sum:  # base included, in float32, as the numpy walk does
            return self.weight * sums
        return self.weight * (self.base + sums)


def with_library(model: CompiledModel, library: NativeLibrary) -> CompiledModel:
    """The model with every forest evaluated by `library` (which must hold them all)."""
    forests = forests_of(model)
    if library.forests != len(forests):
        raise NativeUnavailable(
            f"{library.path.name} holds {library.forests} forests, the model {len(forests)}"
        )
    native = iter(
        NativeForest(**_fields(forest), library=library, index=i)
        for i, forest in enumerate(forests)
    )
    regressor = _swap(model.regressor, native)
    interval = model.interval
    if interval is not None:
        interval = dataclasses.replace(interval, scale=_swap(interval.scale, native))
    return CompiledModel(model.encoder, regressor, interval)


def _fields(forest: Forest) -> dict:
    return {field.name: getattr(forest, field.name) for field in dataclasses.fields(Forest)}


def _swap(regressor: Regressor, native) -> Regressor:
    return dataclasses.replace(regressor, forests=tuple(next(native) for _ in regressor.forests))


def native_library(
    source: Path, prebuilt: Path | None = None, workdir: Path | None = None
) -> NativeLibrary:
    """The library for `source`: `prebuilt` when given and present (built with the image),
    else built now into `workdir` (default: a private temporary folder of this process)."""
    if prebuilt is not None and prebuilt.is_file():
        return NativeLibrary(prebuilt)
    if not source.is_file():
        raise NativeUnavailable(f"the serving folder has no {SOURCE_FILE}")
    folder = workdir or Path(tempfile.mkdtemp(prefix="insurance-native-"))
    return NativeLibrary(build(source, folder / LIBRARY_NAME))
