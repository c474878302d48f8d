"""``xpnet export``: write a saved model as an ONNX graph (see ``docs/onnx.md``).

The graph is traced from the layers' own forward code by [`xpnet.export_onnx`][];
this module turns the optional-dependency and tracing
errors into the command's exit statuses, and prints what was written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..checkpoint import load_checkpoint
from ..export import ExportError, export_onnx, require_onnx
from ._args import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, RUN_FILE, CLIError
from ._io import check_output, model_path, run_meta
from ._output import console, print_json, styled
from ._tables import table_encoder

__all__ = ["cmd_export"]


def _describe(path: Path) -> dict[str, Any]:
    """Size, opset and the ``metadata_props`` entries of a written ONNX file."""
    import onnx

    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    return {"bytes": path.stat().st_size,
            "opset": next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "input": json.loads(meta["input"]), "outputs": json.loads(meta["outputs"]),
            "class_names": json.loads(meta["class_names"]) if "class_names" in meta else None}


def _table_info(ckpt: Any, model_file: Path) -> dict[str, Any] | None:
    """What the graph of a model trained on a table takes and returns; None otherwise."""
    enc = table_encoder(run_meta(ckpt, model_file), model_file)
    if enc is None:
        return None
    info = {"target": enc.target, "task": enc.task, "features": enc.feature_names,
            "numeric_features": len(enc.numeric_features)}
    if enc.task == "regression":
        info.update(target_mean=enc.target_mean, target_std=enc.target_std)
    return info


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``xpnet export``: trace, check and write a saved model as ONNX."""
    try:
        versions = require_onnx()
    except ImportError as exc:
        raise CLIError(str(exc), EXIT_USAGE) from None
    model_file = model_path(args.model)
    out = Path(args.output).expanduser()
    if out.exists() and out.resolve() == model_file.resolve():
        raise CLIError(f"OUTPUT {out} is the model file itself; give a new name such as "
                       "model.onnx", EXIT_USAGE)
    if out.suffix.lower() != ".onnx":
        raise CLIError(f"OUTPUT {out} must end in .onnx (the file written is an ONNX "
                       "graph), e.g. model.onnx", EXIT_USAGE)
    check_output(out, "OUTPUT", [model_file, model_file.parent / RUN_FILE])
    ckpt = load_checkpoint(model_file, backend="numpy")
    try:
        export_onnx(ckpt, out, outputs=args.outputs, batch=args.batch, opset=args.opset)
    except ExportError as exc:
        raise CLIError(str(exc), EXIT_FAILURE) from None
    info = {"model": str(model_file.resolve()), "onnx": str(out.resolve()), **_describe(out),
            "versions": versions}
    table = _table_info(ckpt, model_file)
    if table is not None:
        info["table"] = table
    if args.json:
        print_json(info)
        return EXIT_OK
    con = console(stderr=False)
    con.print(styled("wrote ", (str(out), "bold"),
                     f" ({info['bytes'] / 1e3:,.1f} kB, opset {info['opset']}) from {model_file}"))
    for kind, spec in [("input", info["input"])] + [("output", s) for s in info["outputs"]]:
        shape = ", ".join(map(str, spec["shape"]))
        con.print(f"  {kind:<7} {spec['name']:<7} {spec['dtype']:<8} [{shape}]")
    if info["class_names"]:
        con.print(f"  classes {', '.join(info['class_names'])}")
    if table is not None:  # the input's columns; for regression, how to undo the scaling
        n = table["numeric_features"]
        con.print(f"  table   {n} number{'s' if n != 1 else ''}, then "
                  f"{len(table['features']) - n} one-hot features (run.json: "
                  "dataset.table.columns)")
        if table["task"] == "regression":
            con.print(f"  target  {table['target']}, standardized: times "
                      f"{table['target_std']:.6g} plus {table['target_mean']:.6g} gives its units")
    con.print(f"checked with onnx.checker and onnxruntime {versions['onnxruntime']} "
              f"(outputs match the model); traced with ndonnx {versions['ndonnx']}")
    return EXIT_OK
