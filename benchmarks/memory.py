"""Peak resident memory of evaluating (and optionally predicting with) a checkpoint on long
videos: ``python -m pyro_vim.evaluate`` runs in a child process and its maximum resident set
size is read from the operating system.

    python benchmarks/memory.py CKPT --seq-len 100 --num-sequences 64
    python benchmarks/memory.py CKPT --seq-len 100 --num-sequences 64 --repo ../old-checkout

``--repo`` runs the evaluation from another checkout (the code before a change), so that two
versions are measured on the same machine with the same command.  ``--predict`` adds sampled
futures (``--horizon`` frames).  Prints one JSON line (and writes it to ``--json``).
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def commit(repo: str) -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=repo,
                                       stderr=subprocess.DEVNULL, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--num-sequences", type=int, default=64)
    p.add_argument("--predict", action="store_true")
    p.add_argument("--horizon", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repo", default=os.path.join(HERE, ".."),
                   help="checkout whose pyro_vim is measured (default: this one)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        p.error(f"no checkpoint at {args.checkpoint!r}")
    repo = os.path.abspath(args.repo)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "pyro_vim.evaluate", os.path.abspath(args.checkpoint),
               "--out", out, "--seq-len", str(args.seq_len),
               "--num-sequences", str(args.num_sequences)]
        if args.predict:
            cmd += ["--predict", "--horizon", str(args.horizon), "--num-samples", "4"]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=repo,
                   MPLBACKEND="Agg")
        start = time.time()
        subprocess.run(cmd, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        seconds = time.time() - start
        with open(os.path.join(out, "metrics.json")) as f:
            metrics = json.load(f)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {"peak_rss_gb": round(peak_kb / 2 ** 20, 3), "seconds": round(seconds, 1),
              "seq_len": args.seq_len, "num_sequences": args.num_sequences,
              "predict": args.predict, "commit": commit(repo), "repo": repo,
              "rule_module_accuracy": metrics.get("rule_module_accuracy"),
              "recon_mse": (metrics.get("recon_mse") or {}).get("mean"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
