"""What the benchmarks in ``benchmarks/`` share, so that each benchmark is one file with one entry point.

- :mod:`.workload`: RandAugment(2, 9) on real images, the workload the augmentation benchmarks time;
- :mod:`.pillow_randaugment`: the timm-style Pillow RandAugment they compare against (the usual loop);
- :mod:`.backends`: which augmentation backends run here, and which code a row really ran;
- :mod:`.cuda_counts`: kernel launches, host syncs and GPU busy time per call;
- :mod:`.neighbours`: busy processes beside a timed ``kdforaa train`` run.

In the package (not beside the benchmarks) so that the benchmarks import them as plain kdforaa modules,
the type gate checks them, and the GPU check, which copies ``src/`` to a bare machine, carries them.
"""
