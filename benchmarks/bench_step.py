"""Step cost of distillation (CE vs online teacher vs cached teacher vs the limit), side by side.

python benchmarks/bench_step.py [--threads 2] [--steps 20] [--repeats 5]
"""

import argparse

import torch

from kdforaa.experiments.step_bench import format_step_bench, run_step_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    result = run_step_bench("resnet8", "resnet20", steps=args.steps, repeats=args.repeats, batch=args.batch)
    print(format_step_bench(result))


if __name__ == "__main__":
    main()
