#!/usr/bin/env python3
"""Summarise what nvme/workload.sh wrote to its results port (run-nvme.sh --results FILE).

Usage: summary.py RESULTS [--json]

Prints one table per run: each fio performance job's IOPS, MB/s and latency (mean and
99th percentile of completion latency, microseconds) per controller (with several
rounds: the median round by IOPS, and the IOPS range), and, when QEMU's
own NVMe ("QEMU NVMe Ctrl") is one of several controllers, each other controller's
IOPS as a ratio of QEMU's. With --json, the same as one JSON object on stdout instead.
Exit status 1 when the results are incomplete (a controller without `ok=1`).
"""
import json
import sys

PERF_JOBS = ["randread-4k-qd1", "randread-4k-qd32", "randwrite-4k-qd1",
             "randwrite-4k-qd32", "read-128k-qd8", "write-128k-qd8"]


def parse(text):
    """Key/value lines and the JSON blocks (`@fio CTRL JOB` / `@json CTRL NAME` ... `@end`)."""
    keys, fio, other = {}, {}, {}
    block, lines = None, []
    for line in text.replace("\r", "").split("\n"):
        if block is not None:
            if line == "@end":
                body = "\n".join(lines)
                body = body[body.find("{"):] if "{" in body else "{}"
                kind, ctrl, name = block
                if kind == "@fio":  # (a job run in several rounds appears once per round)
                    fio.setdefault(ctrl, {}).setdefault(name, []).append(json.loads(body))
                else:
                    other.setdefault(ctrl, {})[name] = json.loads(body)
                block, lines = None, []
            else:
                lines.append(line)
        elif line.startswith("@fio ") or line.startswith("@json "):
            block = tuple(line.split(" ", 2))
        elif "=" in line and "." in line.split("=", 1)[0]:
            key, value = line.split("=", 1)
            ctrl, name = key.split(".", 1)
            keys.setdefault(ctrl, {})[name] = value
    return keys, fio, other


def job_figures(run):
    """IOPS, MB/s, mean and p99 completion latency (us) of one fio job, read or write."""
    job = run["jobs"][0]
    side = job["read"] if job["read"]["io_bytes"] > 0 else job["write"]
    clat = side.get("clat_ns", {})
    p99 = clat.get("percentile", {}).get("99.000000")
    return {
        "iops": round(side["iops"], 1),
        "mb_s": round(side["bw_bytes"] / 1e6, 2),
        "lat_mean_us": round(side["lat_ns"]["mean"] / 1000, 1),
        "clat_p99_us": round(p99 / 1000, 1) if p99 is not None else None,
        "errors": job.get("error", 0),
    }


def summarise(text):
    keys, fio, _ = parse(text)
    ctrls = [c for c in keys if c != "all"]
    summary = {"controllers": {}, "total_s": keys.get("all", {}).get("time.total"),
               "perf_s": keys.get("all", {}).get("time.perf")}
    for c in ctrls:
        k = keys[c]
        entry = {
            "address": k.get("address"), "model": k.get("model"), "serial": k.get("serial"),
            "pci_id": k.get("pci_id"), "engine": k.get("engine"), "bytes": k.get("bytes"),
            "ok": k.get("ok") == "1", "fail": k.get("fail"),
            "times_s": {n[5:]: float(v) for n, v in k.items() if n.startswith("time.")},
            "jobs": {},
        }
        for job in PERF_JOBS:
            runs = [job_figures(r) for r in fio.get(c, {}).get(job, [])]
            if runs:
                # The median run by IOPS stands for the job; the range beside it.
                runs.sort(key=lambda f: f["iops"])
                fig = dict(runs[len(runs) // 2])
                fig["rounds"] = len(runs)
                fig["iops_min"], fig["iops_max"] = runs[0]["iops"], runs[-1]["iops"]
                entry["jobs"][job] = fig
        summary["controllers"][c] = entry
    base = next((c for c in ctrls if (keys[c].get("model") or "").startswith("QEMU NVMe")), None)
    if base is not None and len(ctrls) > 1:
        for c in ctrls:
            if c == base:
                continue
            ratios = {}
            for job, fig in summary["controllers"][c]["jobs"].items():
                b = summary["controllers"][base]["jobs"].get(job)
                if b and b["iops"]:
                    ratios[job] = round(fig["iops"] / b["iops"], 2)
            summary["controllers"][c]["iops_ratio_to_qemu"] = ratios
    return summary


def table(summary):
    out = []
    for c, e in summary["controllers"].items():
        out.append(f"{c} {e['address']} {e['model']} (serial {e['serial']}, {e['pci_id']}, "
                   f"{e['engine']}, {e['bytes']} bytes): {'PASS' if e['ok'] else 'FAIL ' + str(e['fail'])}")
        out.append("  steps (s): " + ", ".join(f"{n} {v}" for n, v in e["times_s"].items()))
        rounds = max([f["rounds"] for f in e["jobs"].values()] + [1])
        out.append(f"  {'job':<18} {'IOPS':>9} {'MB/s':>8} {'lat us':>8} {'p99 us':>8}"
                   + (f" {'IOPS range':>17}" if rounds > 1 else "")
                   + (f" {'x QEMU':>7}" if "iops_ratio_to_qemu" in e else ""))
        for job, f in e["jobs"].items():
            ratio = e.get("iops_ratio_to_qemu", {}).get(job)
            spread = f"{f['iops_min']:.0f}-{f['iops_max']:.0f}"
            out.append(f"  {job:<18} {f['iops']:>9} {f['mb_s']:>8} {f['lat_mean_us']:>8} "
                       f"{f['clat_p99_us']!s:>8}" + (f" {spread:>17}" if rounds > 1 else "")
                       + (f" {ratio:>7}" if ratio is not None else ""))
        if rounds > 1:
            out.append(f"  (median of {rounds} rounds by IOPS)")
    out.append(f"workload total: {summary['total_s']} s (performance jobs {summary['perf_s']} s)")
    return "\n".join(out)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8", errors="replace") as f:
        summary = summarise(f.read())
    if "--json" in args:
        print(json.dumps(summary, indent=1))
    else:
        print(table(summary))
    complete = summary["controllers"] and all(e["ok"] for e in summary["controllers"].values())
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
