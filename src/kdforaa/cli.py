"""The ``kdforaa`` command line: train, eval, demo, models, config, data fetch, augment-grid, ...

Exit codes: 0 success; 2 bad input (:class:`~kdforaa.errors.BadInput`: one line on stderr, no
traceback); 1 an internal error (any other exception: one line, its traceback with ``--debug``) or a
training error; 141 when the reader of stdout went away (``kdforaa models | head -3``: quietly).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import signal
import statistics
import sys
import traceback
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, NoReturn

from kdforaa import __version__
from kdforaa.config import AUTOAUGMENT_POLICY_NAMES, DEFAULT_DATA_SET, POLICY_NAMES
from kdforaa.console import (
    error_line,
    first_line,
    one_line_warnings,
    print_error,
    signal_received,
    signals_as_exceptions,
)
from kdforaa.errors import BadInput, Stopped, Terminated, TrainingError
from kdforaa.limits import MAX_THREADS, check_range
from kdforaa.paths import check_output_file, check_output_folder
from kdforaa.text import count

EXIT_BROKEN_PIPE = 141  # what a shell reports for a program ended by SIGPIPE (128 + 13)


def _check_at_least(args: argparse.Namespace, **lowest: int) -> None:
    """BadInput naming the flag of the first option (by its ``args`` name) below its lowest value; an
    option left unset (None) passes. The library checks its arguments too, in its own names."""
    for name, low in lowest.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise BadInput(f"--{name.replace('_', '-')} must be at least {low}, got {value}")


def _cmd_train(args: argparse.Namespace) -> int:
    from kdforaa.config import load_config
    from kdforaa.train.distributed import restarted_by_torchrun, torchrun_world
    from kdforaa.train.loop import Trainer, resume_config
    from kdforaa.train.run_folder import RunFolder

    config_path = args.items[0] if args.items and "=" not in args.items[0] else None
    overrides = args.items[1:] if config_path else args.items
    world = torchrun_world()
    if args.resume:
        if config_path or overrides:
            raise BadInput("--resume continues a run with its own config: give no CONFIG or overrides")
        out, resume = args.resume, True
    else:
        if not args.out:
            raise BadInput("missing --out DIR: the run folder to write (or --resume DIR to continue one)")
        # a worker restarted by torchrun --max-restarts continues the run its group began
        out, resume = args.out, restarted_by_torchrun() and RunFolder(args.out).can_resume()
    cfg = resume_config(out) if resume else load_config(_config_file(config_path), overrides)
    summary = Trainer(cfg, out, resume=resume, progress=not args.quiet, world=world).run()
    if world.is_main:
        print(
            f"final test accuracy {summary['final_test_acc']:.2f}% (best {summary['best_test_acc']:.2f}%); "
            f"run folder: {Path(out).resolve()}"
        )
    return 0


def _eval_data(
    config: dict[str, Any] | None, data_name: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    """The ``data:`` keys ``eval`` uses: those a weights file records (a run's data section, an export's
    data set name) under ``--data``/``--root``, and ``--limit`` for the split's limit (a run's
    ``test_limit`` otherwise, so that eval scores what the run scored; 0: the whole split)."""
    recorded = dict(config.get("data", {})) if config else {"name": data_name} if data_name else {}
    if not recorded and not args.data:
        raise BadInput(f"{args.checkpoint} does not record its data set: pass --data NAME (and --root DIR)")
    given = {key: value for key, value in (("name", args.data), ("root", args.root)) if value}
    if args.limit is not None:
        if args.limit < 0:
            raise BadInput(f"--limit must be 0 (the whole split) or more, got {args.limit}")
        given["test_limit" if args.split == "test" else "limit"] = args.limit or None
    return {**recorded, **given}


def _cmd_eval(args: argparse.Namespace) -> int:
    from kdforaa.config import DataConfig, build_section
    from kdforaa.data.datasets import load_dataset
    from kdforaa.models.from_checkpoint import load_trained
    from kdforaa.models.resolution import check_resolution
    from kdforaa.train.device import resolve_device
    from kdforaa.train.evaluate import evaluate, inference_speed

    trained = load_trained(args.checkpoint, architecture=args.model, format=args.format)  # as it was trained
    model, num_classes, in_channels = trained.model, trained.num_classes, trained.in_channels
    data = build_section(DataConfig, **_eval_data(trained.config, trained.data, args))
    dataset = load_dataset(data, args.split)
    if (dataset.num_classes, dataset.in_channels) != (num_classes, in_channels):
        raise BadInput(
            f"checkpoint expects {count(num_classes, 'class', 'classes')} and "
            f"{count(in_channels, 'channel')}, "
            f"data set {data.name} has {count(dataset.num_classes, 'class', 'classes')} and "
            f"{count(dataset.in_channels, 'channel')}"
        )
    side = trained.student_resolution
    if side:
        check_resolution(side, dataset.image_size)
    device = resolve_device(args.device)
    result = evaluate(model.to(device), dataset, device)
    speed = statistics.median(inference_speed(model, dataset, device) for _ in range(3))  # model is warm
    view = f", seen at {side}x{side}" if side else ""
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{trained.name} on {data.name} {args.split}: accuracy {result['acc']:.2f}% "
        f"loss {result['loss']:.4f} ({len(dataset)} images{view}); {params:,} parameters, "
        f"{speed:,.0f} img/s inference; checkpoint: {Path(args.checkpoint).resolve()}"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from kdforaa.models.export import export_weights
    from kdforaa.models.from_checkpoint import load_trained

    trained = load_trained(args.checkpoint, architecture=args.model, format=args.input_format)
    out = export_weights(trained, args.out, layout=args.format)
    print(
        f"{trained.name} ({count(trained.num_classes, 'class', 'classes')}, "
        f"{count(trained.in_channels, 'channel')}) weights written to "
        f"{out.resolve()}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from kdforaa.experiments.demo import run_demo

    _check_at_least(args, seeds=1)
    check_range("--threads", args.threads, 0, MAX_THREADS, "give 0 (every usable core) or a thread count")
    run_demo(Path(args.out), full=args.full, seeds=args.seeds, threads=args.threads)
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from kdforaa.models.registry import available_models, describe_model

    for name in available_models():
        print(describe_model(name))
    print("timm:<name> builds any timm model when timm is installed (pip install 'kdforaa[timm]')")
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from kdforaa.data.fetch import fetch_dataset

    path = fetch_dataset(args.name, root=args.root)
    print(f"{args.name} is ready in {path}")
    return 0


def _cmd_augment_grid(args: argparse.Namespace) -> int:
    import torch

    from kdforaa.analysis.augment_grid import render_grid
    from kdforaa.analysis.outliers import parse_levels
    from kdforaa.augment import OP_NAMES, Policy, SingleOp, build_policy
    from kdforaa.config import AugmentConfig, DataConfig, build_section
    from kdforaa.data.datasets import load_dataset

    if args.policy not in POLICY_NAMES and args.policy not in OP_NAMES:
        raise BadInput(f"--policy {args.policy!r} is not one of {', '.join(POLICY_NAMES + OP_NAMES)}")
    _check_at_least(args, count=1)
    levels = parse_levels(args.levels)  # finite and >= 0: valid magnitudes
    single_op = args.policy in OP_NAMES
    augment = None if single_op else build_section(AugmentConfig, policy=args.policy, num_ops=args.num_ops)
    candidates = 4 * args.count  # rows the level does not change give way to the next images
    data = build_section(DataConfig, name=args.data, root=args.root, test_limit=candidates)
    dataset = load_dataset(data, "test")
    images = dataset.images(torch.arange(min(candidates, len(dataset))))

    def factory(level: float) -> Policy:
        if augment is None:
            return SingleOp(args.policy, level)
        policy = build_policy(augment.model_copy(update={"magnitude": level}))
        assert policy is not None  # --policy names a policy here, never "none"
        return policy

    path = render_grid(images, factory, Path(args.out), levels=levels, seed=args.seed, rows=args.count)
    print(
        f"grid of {count(min(args.count, len(images)), args.data + ' image')} under {args.policy} written "
        f"to {path.resolve()}"
    )
    return 0


def _cmd_cache_teacher(args: argparse.Namespace) -> int:
    from kdforaa.config import load_config
    from kdforaa.distill.cache import build_cache
    from kdforaa.train.device import resolve_device
    from kdforaa.train.threads import set_threads

    _check_at_least(args, epochs=1, k=1, batch_size=1)
    overrides = list(args.overrides)
    given = (("checkpoint", args.teacher), ("model", args.model), ("format", args.format))
    for key, value in given:  # the run the cache is for distils from this teacher
        if value:
            overrides.append(f"teacher.{key}={json.dumps(value)}")  # a quoted YAML scalar
    cfg = load_config(args.config, overrides)
    teacher = cfg.teacher.checkpoint
    if not teacher:
        raise BadInput("missing --teacher CKPT: the teacher checkpoint to cache (or set teacher.checkpoint)")
    set_threads(cfg.train.threads)  # the cached logits' bits depend on it, as a live teacher's do
    cache = build_cache(
        cfg,
        teacher,
        args.out,
        epochs=cfg.train.epochs if args.epochs is None else args.epochs,
        k=args.k,
        batch_size=args.batch_size,
        device=resolve_device(args.device or cfg.train.device),
        progress=not args.quiet,
    )
    span = count(cache.epochs, "epoch") if cache.per_epoch else "clean images (one file serves every epoch)"
    print(
        f"top-{cache.k} teacher logits of {cache.num_samples} samples x {span} cached in "
        f"{Path(args.out).resolve()}; train with teacher.cache={args.out}"
    )
    return 0


def _cmd_outliers(args: argparse.Namespace) -> int:
    from kdforaa.analysis.outliers import OutlierOptions, parse_levels, run_outliers

    _check_at_least(args, k=1, batch_size=1, group_size=1, limit=1, gallery=0)
    options = OutlierOptions(
        teacher=args.teacher,
        out=args.out,
        model=args.model,
        format=args.format,
        data=args.data,
        root=args.root,
        limit=args.limit,
        device=args.device,
        policy=args.policy,
        levels=tuple(parse_levels(args.levels)),
        num_ops=args.num_ops,
        autoaugment_policy=args.autoaugment_policy,
        seed=args.seed,
        k=args.k,
        batch_size=args.batch_size,
        group_size=args.group_size,
        gallery=args.gallery,
        progress=not args.quiet,
    )
    results = run_outliers(options)
    if not results.t_stddev_measured:
        print(
            f"note: {results.images} images make fewer than two groups of --group-size {args.group_size}: "
            "t_stddev is left empty (use more images or a smaller --group-size)"
        )
    worst = max(results.rows, key=lambda r: r["outlier_rate"])
    print(
        f"teacher {results.clean_acc:.2f}% on {results.images} clean {results.data} test images; highest "
        f"outlier rate {100 * worst['outlier_rate']:.1f}% ({worst['op']}"
        + (")" if worst["level"] is None else f" at level {worst['level']:g})")
    )
    print(
        f"the teacher ran on {results.images_run} distinct images of the {results.images_measured} measured "
        "(the others it had already seen)"
    )
    written = ", ".join(path.name for path in results.files.values())
    print(f"outlier analysis written to {Path(args.out).resolve()} ({written})")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from kdforaa.experiments.sweep import report_only, run_sweep

    if args.report_only:
        if args.sweep or args.out:
            raise BadInput(
                "--report-only DIR remakes the tables of the sweep in DIR: give no SWEEP.yaml or --out"
            )
        report_only(args.report_only)
        return 0
    if not args.sweep:
        raise BadInput("missing SWEEP.yaml: the sweep file to run (or --report-only DIR)")
    if not args.out:
        raise BadInput("missing --out DIR: the folder for the sweep's runs and results")
    return run_sweep(args.sweep, args.out, jobs=args.jobs, dry_run=args.dry_run, reuse_from=args.reuse_from)


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from kdforaa.config import config_schema, config_table, config_to_dict, load_config
    from kdforaa.train.preflight import check_run

    if args.schema or args.markdown:
        flag = "--schema" if args.schema else "--markdown"
        if args.items:
            raise BadInput(f"{flag} takes no CONFIG or overrides: it describes every key")
        text = json.dumps(config_schema(), indent=2) + "\n" if args.schema else config_table()
        print(text, end="")
        return 0
    if args.example is not None:
        return _print_example(args.example, args.items)
    config_path = args.items[0] if args.items and "=" not in args.items[0] else None
    overrides = args.items[1:] if config_path else args.items
    cfg = load_config(_config_file(config_path), overrides)
    check_run(cfg)  # what train checks before its first step: a config shown here, train accepts
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
    return 0


def _print_example(name: str, items: list[str]) -> int:
    """``config --example NAME``: the example's text as shipped; without NAME, every example's name."""
    from kdforaa.examples import example_names, example_path

    if items:
        raise BadInput(
            "--example takes no overrides: write the example to a file, then pass it with overrides"
        )
    if not name:
        print("\n".join(example_names()))
        return 0
    print(example_path(name).read_text(), end="")
    return 0


def _config_file(path: str | None) -> str | None:
    """``path``, unless it is missing and names one of the example configs: then how to get that example."""
    from kdforaa.examples import example_name, example_names

    if path is None or Path(path).exists() or example_name(path) not in example_names():
        return path
    name = example_name(path)
    raise BadInput(
        f"no config file {path} here; it is one of kdforaa's examples: "
        f"kdforaa config --example {name} > {Path(path).name}, then pass {Path(path).name}"
    )


def _cmd_bench_step(args: argparse.Namespace) -> int:

    from kdforaa.experiments.step_bench import format_step_bench, run_step_bench
    from kdforaa.train.threads import set_threads

    check_range("--threads", args.threads, 0, MAX_THREADS, "give 0 (every usable core) or a thread count")
    set_threads(args.threads)
    result = run_step_bench(
        args.student, args.teacher, data=args.data, steps=args.steps, repeats=args.repeats, batch=args.batch
    )
    print(format_step_bench(result))
    return 0


class _NamesOf(Collection[str]):
    """The tuple of names ``module.attribute``, as argparse ``choices`` read only when used (a value is
    checked, a help text printed): the modules that own these names import torch, which ``kdforaa
    --help``, ``config`` and ``models`` do without. The argument needs a ``metavar``, or argparse lists
    the choices while the parser is built."""

    def __init__(self, module: str, attribute: str) -> None:
        self._module, self._attribute = module, attribute

    def _names(self) -> tuple[str, ...]:
        return tuple(getattr(importlib.import_module(self._module), self._attribute))

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one BadInput line (exit 2), not a usage block on stderr."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("kdforaa").strip()
        raise BadInput(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


def _weights_options(
    parser: argparse.ArgumentParser, format_flag: str = "--format", auto: bool = True
) -> None:
    """``--model`` and ``--format`` (``format_flag``): what a weights file that does not say holds, as
    ``teacher.model`` and ``teacher.format`` say it in a config; the same on every command that reads
    weights. ``auto=False``: no default, so that a config's key is not overridden."""
    from kdforaa.config import WEIGHT_FORMATS

    parser.add_argument(
        "--model",
        help="architecture of weights that do not record it, e.g. resnet32x4 for a RepDistiller checkpoint "
        "(teacher.model in a config; see kdforaa models)",
    )
    parser.add_argument(
        format_flag,
        default="auto" if auto else None,
        choices=WEIGHT_FORMATS,
        help="what the weights file is (teacher.format in a config; default: read off the file)",
    )


#: makes one subcommand's parser: ``command(name, help=..., description=...)``
_CommandMaker = Callable[..., argparse.ArgumentParser]


def _add_train(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa train``: its flags and handler."""
    p = command(
        "train",
        help="train a model (a teacher, or a student distilled from one)",
        description="Train a model from a YAML config; dotted key=value pairs override config keys "
        "(e.g. train.epochs=5 distill.method=topk_kd).",
    )
    p.add_argument("items", nargs="*", metavar="CONFIG [key=value ...]", help="config file, then overrides")
    p.add_argument(
        "--out", help="run folder to create (config.yaml, metrics.jsonl, last.pt, best.pt, summary.json)"
    )
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.set_defaults(func=_cmd_train)


def _add_eval(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa eval``: its flags and handler."""
    p = command("eval", help="accuracy, parameters and inference speed of a checkpoint")
    p.add_argument(
        "checkpoint", help="a run folder's best.pt, a RepDistiller checkpoint, a .safetensors file, ..."
    )
    p.add_argument("--data", help="data set name (default: the one the checkpoint was trained on)")
    p.add_argument("--root", help="data set folder (default: the checkpoint's, then the standard places)")
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument(
        "--limit",
        type=int,
        help="evaluate the first N images of the split; 0: all of them (default: the run's "
        "data.test_limit for the test split, else all)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _weights_options(p)
    p.set_defaults(func=_cmd_eval)


def _add_export(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa export``: its flags and handler."""
    p = command(
        "export",
        help="write a checkpoint's weights (and what they are) to a .safetensors file or RepDistiller's .pth",
        description="Write the model weights of CHECKPOINT (any format eval reads) to a .safetensors file, "
        "with the architecture, data set, class count, input channels and resolution in its metadata; or, "
        "with --format repdistiller, to a .pth file RepDistiller's and mdistiller's code loads.",
    )
    p.add_argument("checkpoint", help="a run folder's best.pt, a RepDistiller checkpoint, a state dict, ...")
    p.add_argument("--out", required=True, help="the file to write (.safetensors; .pth for repdistiller)")
    _weights_options(p, "--input-format")
    p.add_argument(
        "--format",
        metavar="LAYOUT",
        choices=_NamesOf("kdforaa.models.export", "LAYOUTS"),
        help="what to write (%(choices)s): kdforaa's names or timm's (for timm:<name> models, their "
        "default) in a .safetensors file, or RepDistiller's {'model': state_dict} .pth",
    )
    p.set_defaults(func=_cmd_export)


def _add_demo(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa demo``: its flags and handler."""
    p = command(
        "demo",
        help="train a teacher, then a student three ways (CE, Hinton KD, KDforAA) at RandAugment level 15",
        description="The few-minute demonstration on Fashion-MNIST: teacher, then CE vs KD vs KDforAA "
        "students under strong augmentation; prints a table and writes a plot and results.json.",
    )
    p.add_argument(
        "--out", default="runs/demo", help="folder for the demo's runs and results (default runs/demo)"
    )
    p.add_argument("--full", action="store_true", help="the longer version documented in docs/results.md")
    p.add_argument("--seeds", type=int, default=1, help="student seeds per method (default 1)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default 0: every core this process may use)",
    )
    p.set_defaults(func=_cmd_demo)


def _add_models(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa models``: its flags and handler."""
    p = command("models", help="list the model names (model.name)")
    p.set_defaults(func=_cmd_models)


def _add_config(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa config``: its flags and handler."""
    p = command(
        "config",
        help="print a resolved config (YAML) or the schema of every config key (JSON)",
        description="--show: the config a run would use, CONFIG with its overrides and every default filled "
        "in (what the run folder's config.yaml will hold). --schema: the JSON schema of every key "
        "(types, defaults, bounds, choices, descriptions). --markdown: a table of every key, its default "
        "and meaning (the README's). --example NAME: one of the example configs that come with "
        "kdforaa (kdforaa config --example fashion_mnist/teacher > teacher.yaml).",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--show", action="store_true", help="print the resolved config of CONFIG and overrides")
    what.add_argument("--schema", action="store_true", help="print the JSON schema of every config key")
    what.add_argument("--markdown", action="store_true", help="print a Markdown table of every config key")
    what.add_argument(
        "--example",
        nargs="?",
        const="",
        metavar="NAME",
        help="print the example config NAME (e.g. fashion_mnist/teacher), as shipped; without NAME list them",
    )
    p.add_argument("items", nargs="*", metavar="[CONFIG] [key=value ...]", help="config file, then overrides")
    p.set_defaults(func=_cmd_config)


def _add_data(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa data``: its flags and handler."""
    p = command("data", help="data set tools")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = data_sub.add_parser("fetch", parents=[common], help="download, verify and unpack a data set")
    f.add_argument(
        "name", metavar="NAME", choices=_NamesOf("kdforaa.data.fetch", "FETCHABLE"), help="one of %(choices)s"
    )
    f.add_argument("--root", help="where to put it (default $KDFORAA_DATA or ~/.cache/kdforaa)")
    f.set_defaults(func=_cmd_data_fetch)


def _add_bench(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa bench``: its flags and handler."""
    p = command("bench", help="benchmarks (see also benchmarks/)")
    bench_sub = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    b = bench_sub.add_parser("step", parents=[common], help="img/s: CE step, online teacher, cached teacher")
    b.add_argument("--student", default="resnet8")
    b.add_argument("--teacher", default="resnet20")
    b.add_argument("--data", default=DEFAULT_DATA_SET, help="data set name, e.g. cifar10 for the 32x32 pair")
    b.add_argument("--batch", type=int, default=128)
    b.add_argument("--steps", type=int, default=20)
    b.add_argument("--repeats", type=int, default=5)
    b.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (default 0: every core this process may use)",
    )
    b.set_defaults(func=_cmd_bench_step)


def _add_augment_grid(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa augment-grid``: its flags and handler."""
    p = command("augment-grid", help="write a PNG grid of images under a policy at increasing levels")
    p.add_argument("--out", default="augment-grid.png", help="PNG file to write")
    p.add_argument("--data", default=DEFAULT_DATA_SET, help="data set name (default %(default)s)")
    p.add_argument("--root", help="data set folder")
    p.add_argument("--policy", default="randaugment", help=f"{', '.join(POLICY_NAMES)} or an op name")
    p.add_argument("--num-ops", type=int, default=2, help="RandAugment ops per image (default 2)")
    p.add_argument("--levels", default="0,5,10,15,20,30", help="comma-separated levels")
    p.add_argument("--count", type=int, default=8, help="number of images (rows)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_augment_grid)


def _add_cache_teacher(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa cache-teacher``: its flags and handler."""
    p = command(
        "cache-teacher",
        help="run a teacher once over a config's augmented training images and cache its top-k logits",
        description="Cache the teacher's top-k logits for every training sample of epochs 0..E-1 of a config "
        "(same seed and per-sample augmentation keys), so training can replay them with teacher.cache=DIR "
        "instead of running the teacher. Resumable: complete epochs in DIR are kept.",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (e.g. seed=1)")
    p.add_argument("--config", help="the training run's YAML config (default: all defaults)")
    p.add_argument("--teacher", help="teacher checkpoint (default: the config's teacher.checkpoint)")
    _weights_options(p, auto=False)
    p.add_argument("--epochs", type=int, help="epochs to cache (default: the config's train.epochs)")
    p.add_argument("--out", required=True, help="cache folder to write or extend")
    p.add_argument("--k", type=int, default=10, help="teacher logits kept per sample (default 10)")
    p.add_argument("--batch-size", type=int, help="teacher batch size (default: train.eval_batch_size)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's train.device)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_cache_teacher)


def _add_outliers(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa outliers``: its flags and handler."""
    p = command(
        "outliers",
        help="measure which ops, at which levels, turn test images into outliers for a teacher",
        description="Apply each op of a policy alone at each level to the test split and compare the "
        "teacher's predictions with those on the clean images; also the whole policy per level. Writes "
        "outliers.csv, policy_stats.csv, outliers_heatmap.png and outliers_gallery.png.",
    )
    p.add_argument(
        "--teacher",
        required=True,
        help="teacher weights: a run folder's best.pt, an exported .safetensors file, a RepDistiller "
        "checkpoint or a state dict (with --model for the last two)",
    )
    _weights_options(p)
    p.add_argument("--out", required=True, help="folder for the tables and figures")
    p.add_argument(
        "--policy",
        default="randaugment",
        help=f"whose ops: {', '.join(POLICY_NAMES)}, or a comma list of op names",
    )
    p.add_argument(
        "--levels", default="0,5,10,15,20,30", help="comma-separated levels (default 0,5,10,15,20,30)"
    )
    p.add_argument("--limit", type=int, help="use the first N test images (default: all)")
    p.add_argument("--data", help="data set name (default: the one the teacher was trained on)")
    p.add_argument("--root", help="data set folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-sample augmentation keys")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--k", type=int, default=3, help="K of topk_coverage (default 3)")
    p.add_argument("--num-ops", type=int, default=2, help="ops per image of the whole RandAugment policy")
    p.add_argument(
        "--autoaugment-policy",
        default="imagenet",
        choices=AUTOAUGMENT_POLICY_NAMES,
        help="which published AutoAugment policy, for --policy autoaugment (default imagenet)",
    )
    p.add_argument(
        "--group-size",
        type=int,
        default=640,
        help="teacher outputs averaged per group for the Wang et al. t_stddev (default 640, as theirs)",
    )
    p.add_argument("--gallery", type=int, default=16, help="outliers shown in the gallery (default 16)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_outliers)


def _add_sweep(command: _CommandMaker, common: argparse.ArgumentParser) -> None:
    """``kdforaa sweep``: its flags and handler."""
    p = command(
        "sweep",
        help="train a grid of runs from a sweep file, in parallel, and summarise them",
        description="Train every run of SWEEP.yaml (base config x grid x seeds; teachers first) into its "
        "own folder under DIR, skipping finished runs and resuming killed ones; then write results.csv, "
        "summary.csv, summary.md and accuracy plots.",
    )
    p.add_argument("sweep", nargs="?", metavar="SWEEP.yaml", help="the sweep file")
    p.add_argument("--out", help="folder for the runs and the results")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default 1)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state, train nothing")
    p.add_argument("--report-only", metavar="DIR", help="remake the tables and plots of the sweep in DIR")
    p.add_argument(
        "--reuse-from",
        metavar="DIR",
        action="append",
        default=[],
        help="copy finished runs with the same config from under DIR instead of training them (repeatable)",
    )
    p.set_defaults(func=_cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    # --debug is accepted before or after the command
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on an internal error print its traceback; log details such as which augmentation kernels run",
    )
    parser = _Parser(
        prog="kdforaa",
        description="Train image classifiers under strong per-sample augmentation, with knowledge "
        "distillation that circumvents augmentation outliers (KDforAA).",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"kdforaa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    for add in (
        _add_train,
        _add_eval,
        _add_export,
        _add_demo,
        _add_models,
        _add_config,
        _add_data,
        _add_bench,
        _add_augment_grid,
        _add_cache_teacher,
        _add_outliers,
        _add_sweep,
    ):
        add(command, common)
    return parser


def _check_override_habits(tokens: list[str], argv: list[str]) -> None:
    """Hydra's and yacs's ways of writing an override among ``tokens`` (``--train.epochs=1``,
    ``--train.epochs 1``, ``train.epochs 1``) are BadInput showing kdforaa's: ``train.epochs=1``.
    ``argv``, the whole command line, supplies the value that follows a key."""
    from kdforaa.config import config_keys

    keys = set(config_keys())
    for token in tokens:
        key, sep, value = token.removeprefix("--").partition("=")
        if key not in keys or (sep and not token.startswith("--")) or Path(token).is_file():
            continue
        written = token
        if not sep:
            after = argv[argv.index(token) + 1 :]
            value = after[0] if after and "=" not in after[0] and not after[0].startswith("-") else ""
            written = f"{token} {value}".strip()
        raise BadInput(f"override {written!r} is not kdforaa's form: write {key}={value or 'VALUE'}")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Parse, letting ``key=value`` overrides stand anywhere (``train CONFIG --out DIR a.b=1``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    target = "items" if hasattr(args, "items") else "overrides" if hasattr(args, "overrides") else None
    for tokens in (extra, getattr(args, target, []) if target else []):
        _check_override_habits(list(tokens), sys.argv[1:] if argv is None else list(argv))
    strays = [a for a in extra if a.startswith("-") or "=" not in a]
    if strays or (extra and target is None):
        parser.error(f"unrecognized arguments: {' '.join(strays or extra)}")
    if extra and target is not None:
        setattr(args, target, list(getattr(args, target)) + extra)
    return args


def _image_suffixes() -> set[str]:
    """File extensions Pillow can write an image to (``.png``, ``.jpg``, ...)."""
    from PIL import Image

    Image.init()
    return {suffix for suffix, kind in Image.registered_extensions().items() if kind in Image.SAVE}


# what each command writes to --out (or --resume, --root): a folder, or a file with one of some suffixes
_OUTPUTS: dict[str, str] = {
    "train": "folder",
    "demo": "folder",
    "cache-teacher": "folder",
    "outliers": "folder",
    "sweep": "folder",
    "data": "folder",
    "export": "file",
    "augment-grid": "image",
}


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output path the command line names can be written, checked before the command starts."""
    kind = _OUTPUTS.get(args.command)
    if kind is None:
        return
    for option in ("out", "resume", "root") if kind == "folder" else ("out",):
        path = getattr(args, option, None)
        if not path or (option == "root" and args.command != "data"):
            continue
        what = f"--{option}"
        if kind == "folder":
            check_output_folder(path, what)
        elif kind == "file":
            check_output_file(path, what)
        elif kind == "image":
            check_output_file(path, what, _image_suffixes())


def _silence_stdout() -> None:
    """Point stdout at the null device: the reader of a pipe has gone (``kdforaa models | head -3``),
    and the interpreter's last flush must not fail on it again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real descriptor (e.g. captured output)
        pass


@contextlib.contextmanager
def _details_on_stderr(enabled: bool) -> Iterator[None]:
    """With ``--debug``: the INFO records of kdforaa's loggers (e.g. which kernels run) on stderr."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("kdforaa")
    handler, level = logging.StreamHandler(sys.stderr), logger.level
    handler.setFormatter(logging.Formatter("kdforaa: %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        with signals_as_exceptions(), one_line_warnings(enabled=not debug):
            args = _parse(argv)
            _check_outputs(args)
            with _details_on_stderr(debug):
                code = args.func(args)
            sys.stdout.flush()  # a reader that went away shows here, not at exit
        if signal_received():  # library code swallowed the signal's exception and the command went on
            return _ended_by_signal()
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (KeyboardInterrupt, Terminated):
        return _ended_by_signal()
    except BadInput as err:
        if signal_received():  # the signal's exception was swallowed on the way and became this
            return _ended_by_signal()
        print_error(err)
        return 2
    except (Stopped, TrainingError) as err:
        print_error(err)
        return 128 + err.signum if isinstance(err, Stopped) else 1
    except Exception as err:
        if signal_received():
            return _ended_by_signal()
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run again with --debug for the traceback)"
        print(
            error_line(f"internal error: {type(err).__name__}: {first_line(err)}{hint}"),
            file=sys.stderr,
        )
        return 1


def _ended_by_signal() -> int:
    """One line and the shell's code for the signal that ended the command (130 for Ctrl-C, 143 for
    SIGTERM)."""
    signum = signal_received() or signal.SIGINT
    print_error("interrupted (Ctrl-C)" if signum == signal.SIGINT else "terminated (SIGTERM)")
    return 128 + signum
