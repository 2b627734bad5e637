"""The ``virtualfocus`` command.

Thin by design: each subcommand lives with the package that owns it and is imported only when used, so
``virtualfocus restore`` works on a core install without torch.

    virtualfocus restore INPUT... --out DIR [--model M] [--backend B]   restore image files
    virtualfocus models [--json]                                         list shipped variants
    virtualfocus fuse INPUT... --out FILE                                all-in-focus image from several planes
    virtualfocus demo [--out DIR]                                        restore a simulated defocus stack
    virtualfocus simulate --out DIR --stacks N --seed S                  simulated z-stacks
    virtualfocus evaluate --model M --data DIR --out REPORT              thesis metrics and report
    virtualfocus evaluate --suite standard --model M --out DIR           the standard evaluation suite
    virtualfocus semisynth --images DIR --out DIR                        defocus stacks from real sharp fields
    virtualfocus import-stacks SRC --out DST                             real z-stacks into the stack format
    virtualfocus train VARIANT --data DIR --out RUN                      (train extra)
    virtualfocus compress --teacher RUN --recipe NAME --out RUN          (train extra)
    virtualfocus export RUN --out models/NAME                            (train extra)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from virtualfocus.edge.cli import cmd_fuse, cmd_models, cmd_restore
from virtualfocus.edge.errors import VirtualFocusError

__all__ = ["main"]


def _lazy(module: str, extra: str | None = None) -> Callable[[list[str]], int]:
    """A subcommand implemented by ``module.main(argv)``, imported on first use."""

    def run(argv: list[str]) -> int:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            hint = f"; install the `{extra}` extra: pip install 'virtualfocus[{extra}]'" if extra else ""
            print(f"virtualfocus: this command needs {e.name!r}{hint}", file=sys.stderr)
            return 2
        return int(mod.main(argv) or 0)

    return run


# -- demo ------------------------------------------------------------------------------------------------------


def cmd_demo(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="virtualfocus demo",
        description="Simulate a defocused z-stack of a blood smear, restore every plane with the default model, "
        "and write the images and a short report.",
    )
    ap.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    ap.add_argument("--model", default=None, help="variant name, folder or file (default: shipped default)")
    ap.add_argument("--backend", choices=["openvino", "onnxruntime"], default=None)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    from virtualfocus.evaluation.demo import run_demo

    return run_demo(Path(args.out), model=args.model, backend=args.backend, seed=args.seed)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "restore": (cmd_restore, "restore image files"),
    "models": (cmd_models, "list shipped model variants"),
    "fuse": (cmd_fuse, "fuse captures at different focus into one all-in-focus image"),
    "demo": (cmd_demo, "restore a simulated defocus stack and report"),
    "simulate": (_lazy("virtualfocus.simulation.simulate"), "write simulated z-stacks"),
    "evaluate": (_lazy("virtualfocus.evaluation.evaluate"), "evaluate a model on z-stacks (thesis metrics)"),
    "semisynth": (_lazy("virtualfocus.simulation.semisynthetic"), "defocus stacks from real sharp smear images"),
    "import-stacks": (_lazy("virtualfocus.zstacks.importer", "train"), "import real z-stacks (folders of planes, TIFFs)"),
    "train": (_lazy("virtualfocus.training.cli", "train"), "train a registered model (train extra)"),
    "compress": (_lazy("virtualfocus.compression.cli", "train"), "derive fast variants (train extra)"),
    "export": (_lazy("virtualfocus.export.cli", "train"), "export to ONNX / OpenVINO IR (train extra)"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``virtualfocus`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(version("virtualfocus"))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"virtualfocus: unknown command {name!r}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    fn, _ = COMMANDS[name]
    t0 = time.perf_counter()
    try:
        return fn(rest)
    except VirtualFocusError as e:
        print(f"virtualfocus {name}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"virtualfocus {name}: interrupted after {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
