"""Benchmark multi-scale deformable attention: time and peak memory of each implementation.

Problem: the pixel decoder's self-attention on a square image of side 512 or 1024 (levels at strides
8, 16, 32, 64, so L=4), M=8 heads, D=32 channels per head, P=4 points, every token a query.
Implementations: the PyTorch reference, and the compiled `mqformer_d2._C` op when built (its CUDA
kernels on a GPU, its CPU loops on the CPU). Reported per implementation: forward and forward+backward time (median of repeats), peak memory, and
ratios to the PyTorch reference; on a GPU also the achieved bandwidth against the bytes the forward
must move at least (value, locations and weights read once, output written once).

    .venv/bin/python benchmarks/ms_deform_attn.py                 # CPU (reference) and, if present, CUDA
    .venv/bin/python benchmarks/ms_deform_attn.py --sizes 512 --repeats 5 --device cuda

CPU peak memory is the growth of the process's peak RSS while one measurement runs, each in a fresh
subprocess (torch's CPU allocator has no peak counter); CUDA peak memory is
torch.cuda.max_memory_allocated above what the inputs already hold.
"""
import argparse
import json
import logging
import multiprocessing
import resource
import statistics
import time

import torch

from mqformer_d2.layers import ms_deform_attn as msda

logger = logging.getLogger("benchmarks.ms_deform_attn")

STRIDES = (8, 16, 32, 64)
HEADS, CHANNELS, POINTS = 8, 32, 4


def make_inputs(image_side, batch, device, dtype):
    """Random op inputs for one image size; every flattened token is also a query."""
    shapes = torch.tensor([[image_side // s, image_side // s] for s in STRIDES], device=device)
    sizes = shapes.prod(1)
    start_index = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    tokens = int(sizes.sum())
    value = torch.randn(batch, tokens, HEADS, CHANNELS, device=device, dtype=dtype)
    locations = torch.rand(batch, tokens, HEADS, len(STRIDES), POINTS, 2, device=device)
    weights = torch.rand(batch, tokens, HEADS, len(STRIDES), POINTS, device=device, dtype=dtype)
    return value, shapes, start_index, locations, weights


def min_forward_bytes(value, locations, weights):
    output_bytes = value.shape[0] * locations.shape[1] * HEADS * CHANNELS * value.element_size()
    return (value.numel() * value.element_size() + locations.numel() * locations.element_size()
            + weights.numel() * weights.element_size() + output_bytes)


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn, device, repeats):
    """Median wall time of fn() in seconds, after one warm-up call."""
    fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(implementation, image_side, batch, device, dtype, repeats):
    """Timings and peak memory of one implementation on one size (runs in the calling process)."""
    torch.manual_seed(0)
    inputs = make_inputs(image_side, batch, device, dtype)
    value, shapes, start, locations, weights = inputs
    op = msda.ms_deform_attn_pytorch if implementation == "pytorch" else msda.ms_deform_attn_compiled

    def forward():
        with torch.no_grad():
            op(value, shapes, start, locations, weights)

    leaves = [t.clone().requires_grad_() for t in (value, locations, weights)]

    def forward_backward():
        op(leaves[0], shapes, start, leaves[1], leaves[2]).sum().backward()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    result = {
        "implementation": implementation, "side": image_side, "batch": batch, "device": device,
        "dtype": str(dtype).replace("torch.", ""), "tokens": int(value.shape[1]),
        "forward_s": time_call(forward, device, repeats),
        "forward_backward_s": time_call(forward_backward, device, repeats),
    }
    if device == "cuda":
        result["peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        result["forward_gb_per_s"] = min_forward_bytes(value, locations, weights) / result["forward_s"] / 1e9
    else:
        result["peak_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return result


def _measure_in_child(queue, args):
    torch.set_num_threads(args.pop("threads"))
    queue.put(measure(**args))


def measure_isolated(threads, **args):
    """CPU: one fresh process per measurement, so its peak RSS is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure_in_child, args=(queue, dict(args, threads=threads)))
    process.start()
    result = queue.get()
    process.join()
    return result


def implementations():
    """The PyTorch reference, and the compiled op (CUDA kernels or CPU loops) when it is built."""
    return ["pytorch", "compiled"] if msda.extension_available() else ["pytorch"]


def report(results):
    """Log one table row per measurement, with ratios to the PyTorch reference of the same size."""
    reference = {(r["side"], r["dtype"]): r for r in results if r["implementation"] == "pytorch"}
    header = "| impl | device | dtype | side | tokens | fwd ms | fwd+bwd ms | peak MiB | fwd x ref | fwd+bwd x ref | mem x ref | fwd GB/s |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        ref = reference.get((r["side"], r["dtype"]))
        ratio = (lambda key: f"{ref[key] / r[key]:.2f}" if ref and r[key] > 0 else "-")
        mem_ratio = f"{r['peak_mib'] / ref['peak_mib']:.2f}" if ref and ref["peak_mib"] > 0 else "-"
        bandwidth = f"{r['forward_gb_per_s']:.0f}" if "forward_gb_per_s" in r else "-"
        lines.append(
            f"| {r['implementation']} | {r['device']} | {r['dtype']} | {r['side']} | {r['tokens']} | "
            f"{r['forward_s'] * 1e3:.1f} | {r['forward_backward_s'] * 1e3:.1f} | {r['peak_mib']:.0f} | "
            f"{ratio('forward_s')} | {ratio('forward_backward_s')} | {mem_ratio} | {bandwidth} |"
        )
    logger.info("speed-up ratios are reference time / implementation time\n%s", "\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="image sides")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--dtypes", nargs="+", default=["float32"],
                        help="value dtypes (CUDA: float32 float16 bfloat16)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    results = []
    for device in devices:
        dtypes = args.dtypes if device == "cuda" else ["float32"]
        for side in args.sizes:
            for dtype_name in dtypes:
                for implementation in implementations():
                    spec = dict(implementation=implementation, image_side=side, batch=args.batch,
                                device=device, dtype=getattr(torch, dtype_name), repeats=args.repeats)
                    logger.info("measuring %s", {k: str(v) for k, v in spec.items()})
                    if device == "cpu":
                        results.append(measure_isolated(args.threads, **spec))
                    else:
                        results.append(measure(**spec))
    report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
