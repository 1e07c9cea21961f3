"""Peak resident memory of ``pyro_vim.infer.predict`` against the number of videos.

Every size runs in a fresh Python process (so one size's peak does not hide the next one's),
which reads its own maximum resident set size (``ru_maxrss``) after the call and reports it
together with the memory it held before the call (Python, torch, the model and the context) and
the size of the returned tensors.  An untrained model of the preset is enough: memory does not
depend on the weights.

    python benchmarks/predict_memory.py                                # 16, 64, 160 videos x 8
    python benchmarks/predict_memory.py --videos 16 64 --repo ../old-checkout --json before.json
    python benchmarks/predict_memory.py --max-batch 32 --json after.json

``--repo`` measures another checkout's ``pyro_vim`` (e.g. the code before a change) with the same
command; ``--max-batch`` is passed to ``predict`` only when given (older code has no such
argument; 0 passes None: all rows in one run of the guide and the model).  A size whose process
fails (e.g. killed for memory) is reported with its exit status and the remaining sizes still
run.  Other processes on the machine change the times, not the memory.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from memory import commit  # noqa: E402  (the same commit lookup as the long-video benchmark)


def rss_gb() -> float:
    """Current resident set size in GB (Linux), else nan."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (OSError, ValueError):
        return float("nan")


def child(args) -> dict:
    """One measurement, in this (fresh) process."""
    import torch

    from pyro_vim import VIM, VIMConfig
    from pyro_vim.infer import predict

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = VIMConfig.preset(args.preset, image_size=args.image_size)
    vim = VIM(config).eval()
    batch = config.make_generator().generate(args.videos, max(2, args.context), seed=0)
    context = torch.from_numpy(batch.frames[:, :args.context])
    kwargs = {} if args.max_batch is None else {"max_batch": args.max_batch or None}
    before = rss_gb()
    start = time.time()
    pred = predict(vim, context, horizon=args.horizon, num_samples=args.samples, **kwargs)
    seconds = time.time() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out_bytes = sum(v.numel() * v.element_size() for v in pred.values())
    return {"videos": args.videos, "samples": args.samples,
            "peak_rss_gb": round(peak_kb / 2 ** 20, 3), "rss_before_gb": round(before, 3),
            "output_gb": round(out_bytes / 2 ** 30, 3), "seconds": round(seconds, 1)}


def run_size(args, videos: int, repo: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--videos", str(videos),
           "--samples", str(args.samples), "--context", str(args.context),
           "--horizon", str(args.horizon), "--image-size", str(args.image_size),
           "--preset", args.preset, "--threads", str(args.threads)]
    if args.max_batch is not None:
        cmd += ["--max-batch", str(args.max_batch)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=repo)
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        return {"videos": videos, "samples": args.samples, "peak_rss_gb": None,
                "error": f"exit status {proc.returncode} {tail[0]}".strip()}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, nargs="+", default=[16, 64, 160])
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--context", type=int, default=4)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--max-batch", type=int, default=None,
                   help="predict's max_batch (default: predict's own default; 0: None, all "
                        "rows in one run)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repo", default=os.path.join(HERE, ".."),
                   help="checkout whose pyro_vim is measured (default: this one)")
    p.add_argument("--json", default=None, help="write the results as JSON")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        (videos,) = args.videos
        args.videos = videos
        print(json.dumps(child(args)))
        return None
    if min(args.videos) < 1 or args.samples < 1 or args.context < 1 or args.horizon < 1:
        p.error("--videos, --samples, --context and --horizon must be positive")
    repo = os.path.abspath(args.repo)
    rows = [run_size(args, v, repo) for v in args.videos]
    result = {"rows": rows, "samples": args.samples, "context": args.context,
              "horizon": args.horizon, "image_size": args.image_size, "preset": args.preset,
              "max_batch": args.max_batch, "threads": args.threads, "commit": commit(repo),
              "repo": repo, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d")}
    print(f"predict, {args.preset} preset {args.image_size}x{args.image_size}, context "
          f"{args.context}, horizon {args.horizon}, max_batch "
          f"{'default' if args.max_batch is None else args.max_batch or None}, "
          f"{args.threads} thread(s), {result['machine']}, {repo} @ {result['commit']}")
    print(f"{'videos x samples':>17} {'peak RSS GB':>12} {'before GB':>10} {'output GB':>10} "
          f"{'seconds':>8}")
    for r in rows:
        if r.get("peak_rss_gb") is None:
            print(f"{r['videos']:>8} x {r['samples']:<6} {r['error']}")
        else:
            print(f"{r['videos']:>8} x {r['samples']:<6} {r['peak_rss_gb']:>12.2f} "
                  f"{r['rss_before_gb']:>10.2f} {r['output_gb']:>10.2f} {r['seconds']:>8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
