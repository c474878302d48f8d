"""Backends: the only module that names NumPy, CuPy, PyTorch and JAX.

A *backend* is an Array API namespace plus a device.  Everything else in xpnet
gets one [`Backend`][xpnet.backends.Backend] per public call and writes ``xp.*`` from the
standard.  CuPy, PyTorch and JAX are imported lazily, only when asked for, so
``import xpnet`` stays fast and never touches a GPU driver.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "Backend",
    "BackendError",
    "KNOWN_BACKENDS",
    "available_backends",
    "backend_status",
    "get_backend",
    "backend_of",
    "to_numpy",
    "synchronize",
]

KNOWN_BACKENDS = ("numpy", "cupy", "torch", "array_api_strict", "jax")
"""Backend names xpnet knows by name. Any other Array API namespace works when
its arrays are passed in directly (see [`backend_of`][xpnet.backends.backend_of])."""

_LIBRARIES = {  # name: (its Array API namespace, how to install it)
    "numpy": ("array_api_compat.numpy", "pip install numpy"),
    "cupy": ("array_api_compat.cupy", 'pip install "cupy-cuda12x[ctk]" (or cupy-cuda13x[ctk])'),
    "torch": ("array_api_compat.torch", "pip install torch"),
    "array_api_strict": ("array_api_strict", "pip install array-api-strict"),
    "jax": ("jax.numpy", "pip install jax"),
}


class BackendError(ValueError):
    """A backend was asked for that is unknown or cannot run here.

    A ``ValueError``, so ``except ValueError`` catches it too.

    Examples
    --------
    >>> import xpnet as xn
    >>> try:
    ...     xn.get_backend("tensorflow")
    ... except xn.backends.BackendError as exc:
    ...     print(exc)
    unknown backend 'tensorflow'; choose one of: auto, numpy, cupy, torch, array_api_strict, jax
    """


@dataclass(frozen=True)
class Backend:
    """An Array API namespace and the device arrays live on.

    Parameters
    ----------
    name : str
        ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``, ``"jax"``
        or the module name of another Array API library.
    xp : module
        The Array API compatible namespace (array-api-compat's wrapper where
        one exists).
    device : object
        The device, as the namespace spells it (``"cpu"``, a CuPy device...).

    Examples
    --------
    >>> import xpnet as xn
    >>> b = xn.backends.get_backend("numpy")
    >>> b.name, b.is_host
    ('numpy', True)
    """

    name: str
    xp: Any = field(repr=False)
    device: Any = None

    @property
    def is_host(self) -> bool:
        """True when arrays live in host memory, so reading a value costs no sync.

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.get_backend("numpy").is_host, xn.get_backend("array_api_strict").is_host
        (True, True)
        """
        if self.name in ("torch", "jax"):  # a JAX device names its platform, torch's prints it
            return str(getattr(self.device, "platform", self.device)).startswith("cpu")
        return self.name in ("numpy", "array_api_strict")

    @property
    def mutable(self) -> bool:
        """True when arrays support in-place updates (NumPy, CuPy, PyTorch).

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.get_backend("numpy").mutable, xn.get_backend("array_api_strict").mutable
        (True, False)
        """
        return self.name in ("numpy", "cupy", "torch")

    def device_scope(self) -> AbstractContextManager[Any]:
        """A context under which new arrays and kernel outputs land on this backend's device.

        CuPy creates ``zeros``, ``empty``, ``arange``, ``full``, ``*_like`` and the
        output of every kernel on the *current* CUDA device, whatever ``device=``
        says; only ``asarray`` follows ``device=``. On CuPy this makes the
        backend's GPU current for the block (a fresh ``cupy.cuda.Device``, so
        threads never share one device stack); elsewhere it does nothing. Every
        public model call, ``fit`` and the optimizers enter it.

        Returns
        -------
        context manager

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> with b.device_scope():
        ...     z = b.xp.zeros(3, dtype=b.xp.float32, device=b.device)
        >>> b.owns(z)
        True
        """
        if self.name == "cupy":
            return type(self.device)(self.device.id)
        return contextlib.nullcontext()

    def __hash__(self) -> int:
        # a CuPy Device compares by id but is unhashable; hash what equality compares
        dev = getattr(self.device, "id", None) if self.name == "cupy" else str(self.device)
        return hash((self.name, getattr(self.xp, "__name__", id(self.xp)), dev))

    @property
    def device_name(self) -> str:
        """A human-readable description of the device.

        Examples
        --------
        >>> import xpnet as xn
        >>> xn.get_backend("numpy").device_name
        'cpu'
        """
        if self.name == "cupy":
            try:
                import cupy

                props = cupy.cuda.runtime.getDeviceProperties(self.device.id)
                gpu = props["name"]
                gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
                return f"cuda:{self.device.id} ({gpu})"
            except Exception:  # pragma: no cover - needs a GPU
                return f"cuda:{getattr(self.device, 'id', 0)}"
        if self.name == "torch":
            return str(self.device)
        if self.name == "jax":
            return f"{self.device.platform}:{self.device.id}"
        return "cpu"

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Copy host data (NumPy array, list, scalar) onto this backend's device.

        Parameters
        ----------
        data : array_like
        dtype : dtype of this namespace, optional

        Returns
        -------
        array

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("array_api_strict")
        >>> a = b.asarray([1.0, 2.0], dtype=b.dtype("float32"))
        >>> b.owns(a), xn.to_numpy(a).tolist()
        (True, [1.0, 2.0])
        """
        return self.xp.asarray(data, dtype=dtype, device=self.device)

    def dtype(self, name: str | Any) -> Any:
        """Resolve a dtype name such as ``"float32"`` in this namespace.

        Parameters
        ----------
        name : str or dtype
            A standard dtype name, or a dtype object of any namespace.

        Returns
        -------
        dtype

        Raises
        ------
        BackendError
            When the namespace has no such dtype.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> b.dtype("float32") == b.xp.float32, b.dtype(np.dtype("int64")) == b.xp.int64
        (True, True)
        """
        if not isinstance(name, str):
            name = dtype_name(name)
        if name == "float64" and not self._has_64bit:
            raise BackendError(
                "backend 'jax' computes in float32 unless JAX's 64-bit mode is on: set the "
                "environment variable JAX_ENABLE_X64=1 before Python starts, or call "
                "jax.config.update('jax_enable_x64', True) before any JAX array is made; "
                "or use dtype='float32'")
        try:
            return getattr(self.xp, name)
        except AttributeError:
            raise BackendError(
                f"dtype {name!r} is not available in backend {self.name!r}"
            ) from None

    @property
    def _has_64bit(self) -> bool:
        """False on JAX without its 64-bit mode (int32 and float32 at most), else True."""
        if self.name != "jax":
            return True
        import jax

        return bool(jax.config.read("jax_enable_x64"))

    @property
    def index_dtype(self) -> Any:
        """The integer dtype of labels and indices: int64 (int32 on JAX without 64-bit mode).

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> b.index_dtype == b.xp.int64
        True
        """
        return self.xp.int64 if self._has_64bit else self.xp.int32

    @property
    def wide_float(self) -> Any:
        """The widest float dtype for sums and metrics: float64 (float32 on JAX without
        64-bit mode).

        Examples
        --------
        >>> import xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> b.wide_float == b.xp.float64
        True
        """
        return self.xp.float64 if self._has_64bit else self.xp.float32

    def __reduce__(self) -> tuple[Any, tuple[str, Any]]:
        # namespaces are modules (not picklable): rebuild from the name and device
        if self.name == "cupy":
            dev: Any = getattr(self.device, "id", 0)
        elif self.name == "jax":
            dev = self.device_name
        elif self.name == "array_api_strict":
            dev = getattr(self.device, "_device", None) or str(self.device)
        else:
            dev = str(self.device)
        return (get_backend, (self.name, dev))

    def owns(self, a: Any) -> bool:
        """Whether array ``a`` belongs to this backend's namespace and device.

        Parameters
        ----------
        a : object

        Returns
        -------
        bool
            False for arrays of another library or device, and for non-arrays.

        Examples
        --------
        >>> import numpy as np, xpnet as xn
        >>> b = xn.get_backend("numpy")
        >>> b.owns(np.zeros(2)), b.owns([0.0, 0.0])
        (True, False)
        """
        try:
            xp = _namespace_of(a)
        except TypeError:
            return False
        return _namespace_names(xp) == self.name and \
            str(array_api_compat.device(a)) == str(self.device)


_NAMESPACES: dict[type, Any] = {}


def _namespace_of(a: Any) -> Any:
    """``array_namespace(a)`` cached per array type (a lookup costs microseconds, per step)."""
    xp = _NAMESPACES.get(type(a))
    if xp is None:
        xp = _NAMESPACES[type(a)] = array_api_compat.array_namespace(a)
    return xp


def dtype_name(dtype: Any) -> str:
    """The standard name (``"float32"``...) of a dtype object of any namespace.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> xn.backends.dtype_name(np.dtype("float32")), xn.backends.dtype_name(np.int64)
    ('float32', 'int64')
    """
    # keyed with the type first: dtypes of two libraries never get compared (array_api_strict
    # warns when its dtypes are compared with NumPy's)
    key = (type(dtype), dtype)
    try:
        name = _DTYPE_NAMES.get(key)
    except TypeError:  # unhashable
        return _dtype_name(dtype)
    if name is None:
        name = _dtype_name(dtype)
        if len(_DTYPE_NAMES) < 256:
            _DTYPE_NAMES[key] = name
    return name


_DTYPE_NAMES: dict[tuple[type, Any], str] = {}  # str(dtype) costs microseconds, per step


def _dtype_name(dtype: Any) -> str:
    """The name after the library's: ``torch.float32``, ``<class 'numpy.int8'>``, ``float64``."""
    return str(dtype).rsplit(".", 1)[-1].removesuffix("'>")


def _namespace_name(xp: Any) -> str:
    for name in KNOWN_BACKENDS:  # array_api_compat.is_numpy_namespace...
        if getattr(array_api_compat, f"is_{name}_namespace")(xp):
            return name
    return getattr(xp, "__name__", "unknown").split(".")[0]


# the namespaces of arrays (modules, so hashable): several microseconds saved per lookup
_namespace_names = functools.cache(_namespace_name)


def _probe_cupy(cupy: Any) -> None:
    """Run CUB, cuBLAS and an NVRTC kernel once so a missing CUDA part fails now (not cuRAND)."""
    a = cupy.arange(4, dtype=cupy.float32).reshape(2, 2)
    twice = cupy.ElementwiseKernel("T x", "T y", "y = x + x", "xpnet_probe",
                                   options=("--fmad=false",))
    total = float((twice(a @ a)).sum())  # [[2, 3], [6, 11]] doubled: 44
    if total != 44.0:
        raise RuntimeError(f"the GPU computed {total} for a 2 x 2 test that gives 44")


@functools.cache
def _probe(name: str) -> str | None:
    """Return None when backend ``name`` is usable, else the reason it is not."""
    if name not in _LIBRARIES:
        return f"unknown backend (known: {', '.join(KNOWN_BACKENDS)})"
    if importlib.util.find_spec(name) is None:
        return f"{name} is not installed ({_LIBRARIES[name][1]})"
    if name == "cupy":
        if os.environ.get("XPNET_DISABLE_CUPY"):
            return "disabled by XPNET_DISABLE_CUPY"
        try:
            import cupy

            n = cupy.cuda.runtime.getDeviceCount()
            if n < 1:
                return "no CUDA GPU found"
            _probe_cupy(cupy)
        except Exception as exc:  # any driver/toolkit failure means "unavailable"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"CuPy is installed but cannot use a GPU: {first}"
        return None
    try:
        importlib.import_module(name)
    except Exception as exc:  # pragma: no cover - broken installs
        return f"{name} failed to import: {exc}"
    return None


def backend_status() -> dict[str, str | None]:
    """Report every known backend and, when unavailable, why.

    Returns
    -------
    dict
        Maps each name in [`KNOWN_BACKENDS`][xpnet.backends.KNOWN_BACKENDS] to ``None``
        when usable or to a one-line reason when not.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.backends.backend_status()["numpy"] is None
    True
    """
    return {name: _probe(name) for name in KNOWN_BACKENDS}


def available_backends() -> list[str]:
    """Names of the backends that can run on this machine.

    CuPy counts only when a CUDA GPU is actually usable; the check is quick,
    never crashes, and is cached for the life of the process.

    Returns
    -------
    list of str

    Examples
    --------
    >>> import xpnet as xn
    >>> "numpy" in xn.available_backends()
    True
    """
    return [name for name, why in backend_status().items() if why is None]


def get_backend(name: str | Backend = "auto", device: Any = None) -> Backend:
    """Resolve a backend by name.

    Parameters
    ----------
    name : str, Backend or module
        ``"auto"`` (CuPy when a GPU is usable, else NumPy), ``"numpy"``,
        ``"cupy"``, ``"torch"``, ``"array_api_strict"``, ``"jax"``;
        ``"torch:cuda"`` style names set the device too. An Array API
        namespace module (anything with ``__array_api_version__``, e.g.
        ``jax.numpy``) is accepted as well: the five libraries above resolve
        to their named backend, any other namespace is used as it is (generic
        path: pure optimizer updates, device-side non-finite guard).
    device : optional
        Device for the backend (``"cpu"``, ``"cuda"``, ``"cuda:1"``, an int
        GPU index for CuPy, a JAX ``Device``). Defaults to the backend's
        default device (for JAX, ``jax.devices()[0]``).

    Returns
    -------
    Backend

    Raises
    ------
    BackendError
        When the name is unknown or the backend cannot run here; the message
        says why and how to fix it.

    Examples
    --------
    >>> import xpnet as xn
    >>> xn.backends.get_backend("numpy").name
    'numpy'
    """
    if isinstance(name, Backend):
        return name
    if hasattr(name, "__array_api_version__") and hasattr(name, "asarray"):
        # an Array API namespace module: a known library goes through its named path
        # (array-api-compat wrapper, device handling); any other is used as it is
        known = _namespace_name(name)
        if known in _LIBRARIES:
            return get_backend(known, device)
        return Backend(known, name, device)
    if not isinstance(name, str):
        raise TypeError(
            f"backend must be a name such as 'numpy' or an Array API namespace module, "
            f"got {type(name).__name__}"
        )
    if ":" in name and device is None:
        name, device = name.split(":", 1)
    name = name.strip().lower().replace("-", "_")
    if name == "auto":
        name = "cupy" if _probe("cupy") is None else "numpy"
    if name not in _LIBRARIES:
        raise BackendError(
            f"unknown backend {name!r}; choose one of: auto, {', '.join(KNOWN_BACKENDS)}"
        )
    why = _probe(name)
    if why is not None:
        raise BackendError(f"backend {name!r} is not available: {why}")
    xp = importlib.import_module(_LIBRARIES[name][0])
    if name == "torch":
        import torch

        dev = torch.device(device if device is not None else "cpu")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("backend 'torch' with device 'cuda': PyTorch sees no CUDA GPU")
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        return Backend("torch", xp, dev)
    if name == "cupy":
        import cupy

        return Backend("cupy", xp, _cupy_device(cupy, device))
    if name == "jax":
        return Backend("jax", xp, _jax_device(device))
    if name == "array_api_strict":
        if device is None or isinstance(device, str):
            device = xp.Device(device or "CPU_DEVICE")
        return Backend(name, xp, device)
    if device not in (None, "cpu"):
        raise BackendError(f"backend 'numpy' runs on the CPU only, got device {device!r}")
    return Backend("numpy", xp, "cpu")


def _jax_device(device: Any) -> Any:
    """A JAX ``Device`` from None (the default), a Device, or ``"cpu"``/``"gpu:1"``..."""
    import jax

    if device is None:
        return jax.devices()[0]
    if hasattr(device, "platform") and hasattr(device, "id"):
        return device
    platform, _, index = str(device).strip().lower().partition(":")
    platform = {"cuda": "gpu", "rocm": "gpu"}.get(platform, platform)
    try:
        devices = jax.devices(platform)
        return devices[int(index or 0)]
    except (RuntimeError, ValueError, IndexError) as exc:
        raise BackendError(f"backend 'jax': no device {device!r} ({exc})") from None


def _cupy_device(cupy: Any, device: Any) -> Any:
    """The ``cupy.cuda.Device`` `device` names (current if None); an absent index refused."""
    if device is None:
        return cupy.cuda.Device()  # the current device, as CuPy itself defaults
    if isinstance(device, int) and not isinstance(device, bool):  # True: refused below
        idx = device
    elif hasattr(device, "id"):  # a cupy.cuda.Device
        idx = int(device.id)
    else:
        text = str(device).strip().lower()
        if text.startswith("cuda"):
            text = text[4:].lstrip(":")
        if not text:
            return cupy.cuda.Device()
        try:
            idx = int(text)
        except ValueError:
            raise BackendError(f"backend 'cupy': bad device {device!r}; use an int or "
                               "'cuda:N'") from None
    count = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= idx < count:
        have = f"GPUs 0-{count - 1}" if count > 1 else "one GPU (0)"
        raise BackendError(f"backend 'cupy': there is no GPU {idx} on this machine "
                           f"(it has {have})")
    return cupy.cuda.Device(idx)


def backend_of(*arrays: Any) -> Backend:
    """The backend (namespace + device) that the given arrays live on.

    Parameters
    ----------
    *arrays
        Arrays of one namespace and one device. Python scalars and ``None``
        are ignored.

    Raises
    ------
    TypeError
        When the arrays come from different namespaces or devices.

    Examples
    --------
    >>> import numpy as np, xpnet as xn
    >>> xn.backends.backend_of(np.zeros(3)).name
    'numpy'
    """
    arrs = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool))]
    if not arrs:
        raise TypeError("no arrays given")
    try:
        xp = array_api_compat.array_namespace(*arrs)
    except TypeError as exc:
        kinds = sorted({type(a).__module__.split(".")[0] + "." + type(a).__name__ for a in arrs})
        raise TypeError(
            f"arrays come from different libraries ({', '.join(kinds)}); "
            "convert them to one backend first"
        ) from exc
    devices = {str(array_api_compat.device(a)) for a in arrs}
    if len(devices) > 1:
        raise TypeError(f"arrays live on different devices: {sorted(devices)}")
    name = _namespace_name(xp)
    return Backend(name, xp, array_api_compat.device(arrs[0]))


def to_numpy(a: Any) -> Any:
    """Copy an array of any backend to a NumPy array on the host.

    This is the one explicit device-to-host copy in xpnet.

    Parameters
    ----------
    a : array, or dict of arrays
        A NumPy, CuPy, PyTorch, JAX, array_api_strict (or any DLPack-capable)
        array, a Python number or list; a dict (such as ``model.params`` or an
        optimizer state) is converted entry by entry, nested dicts included
        (Python numbers in it, such as the state's ``step``, are kept).

    Returns
    -------
    numpy.ndarray, or dict of them

    Raises
    ------
    TypeError
        For an object that is not an array (it would become a NumPy array of
        Python objects).

    Examples
    --------
    >>> import xpnet as xn
    >>> import array_api_compat.numpy as xp
    >>> xn.backends.to_numpy(xp.ones(2)).tolist()
    [1.0, 1.0]
    >>> m = xn.MLP([3, 2], backend="array_api_strict")
    >>> {k: type(v).__name__ for k, v in xn.to_numpy(m.params).items()}
    {'0.W': 'ndarray', '0.b': 'ndarray'}

    A PyTorch ``bfloat16`` tensor becomes an ``ml_dtypes.bfloat16`` array, as
    JAX's do (``float32``, which holds every bfloat16 value exactly, where
    ``ml_dtypes`` is not installed).
    """
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, dict):
        return {k: v if isinstance(v, (bool, int, float)) else to_numpy(v)
                for k, v in a.items()}
    if isinstance(a, np.generic):
        return np.asarray(a)
    if array_api_compat.is_cupy_array(a):
        return a.get()
    if array_api_compat.is_torch_array(a):
        t = a.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16 of its own
            return _bfloat16_to_numpy(t)
        return t.numpy()
    if array_api_compat.is_array_api_obj(a):
        try:
            return np.from_dlpack(a)
        except Exception:
            return np.asarray(a)
    out = np.asarray(a)
    if out.dtype == object:
        raise TypeError(f"to_numpy expects an array (or a dict of arrays), got "
                        f"{type(a).__name__}")
    return out


def _bfloat16_to_numpy(t: Any) -> Any:
    """A host torch bfloat16 tensor as ml_dtypes' bfloat16 (as JAX gives), else float32."""
    try:
        import ml_dtypes
    except ImportError:
        return t.float().numpy()
    import torch

    return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)


def synchronize(backend: Backend) -> None:
    """Block until all queued work on the backend's device has finished.

    Used for honest timings; a no-op on host backends.

    Parameters
    ----------
    backend : Backend

    Examples
    --------
    >>> import time, numpy as np, xpnet as xn
    >>> b = xn.get_backend("numpy")
    >>> t0 = time.perf_counter()
    >>> _ = b.xp.ones((64, 64)) @ b.xp.ones((64, 64))
    >>> xn.backends.synchronize(b)  # on a GPU: wait for the product before reading the clock
    >>> time.perf_counter() >= t0
    True
    """
    if backend.name == "cupy":
        backend.device.synchronize()  # that GPU, whichever is current
    elif backend.name == "torch" and getattr(backend.device, "type", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize(backend.device)


def env_flag(name: str, default: bool) -> bool:
    """The on/off environment variable ``name`` (1/true/yes/on, 0/false/no/off; else default)."""
    value = os.environ.get(name, "").strip().lower()
    return value in ("1", "true", "yes", "on") or (
        default and value not in ("0", "false", "no", "off"))


def versions() -> dict[str, str]:
    """Versions of xpnet's array libraries that are installed (without importing GPU ones).

    Returns
    -------
    dict
        Package name to version string.

    Examples
    --------
    >>> import xpnet as xn
    >>> "numpy" in xn.backends.versions()
    True
    """
    from importlib import metadata

    out = {}
    for pkg in ("numpy", "array-api-compat", "array-api-strict", "torch", "jax", "jaxlib",
                "cupy", "cupy-cuda12x", "cupy-cuda13x", "safetensors", "rich", "numba"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out
