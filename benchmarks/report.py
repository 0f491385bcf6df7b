"""The benchmark's report: medians over rounds, the targets of issues 5 and 9, the tables.

Every served rate is shown as a ratio of two in-process baselines (``inprocess.py``):
``LoadedModel.run``, what the server itself calls, and the naive ``Session.run`` loop. Issue 5's
targets are judged on the first, the stricter; the second is printed beside it. Issue 9's
table and targets (``evaluate_issue9``) use ``Session.run`` at batch 1, as the issue states
them, for tfsoap and the peers alike.
"""

from __future__ import annotations

import statistics
from typing import Any

TARGETS_MODEL = "cnn"
BASES = (("loaded_model_run", "LoadedModel.run"), ("session_run", "Session.run"))


def median_dict(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Field by field median of dicts of the same shape (non-numbers from the first)."""
    out: dict[str, Any] = {}
    for key, value in items[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(float(i[key]) for i in items)
        elif isinstance(value, dict):
            out[key] = median_dict([i[key] for i in items])
        else:
            out[key] = value
    return out


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.1f} M" if x >= 1e6 else f"{x:,.0f}"


def served_rows(served_rounds: dict[str, list[dict[str, Any]]],
                inproc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per phase: medians, and the ratios to each in-process baseline."""
    rows = []
    for key, rounds in served_rounds.items():
        mode, w, model, b, enc, c = key.split("/")
        batch = int(b[1:])
        row = median_dict(rounds)
        row.pop("extra", None)
        row.update(mode=mode, workers=int(w[1:]), model=model, batch=batch, encoding=enc,
                   concurrency=int(c[1:]))
        for kind, _ in BASES:
            base = inproc[kind][model][f"b{batch}"]
            row[f"x_{kind}"] = row["images_per_s"] / base["images_per_s"]
            row[f"p50_over_{kind}_ms"] = row["p50_ms"] - base["p50_ms"]
            # batch-1 rows with batching on are measured against the batch-1 rate, as above
        row["rounds"] = [{k: r[k] for k in ("rps", "p50_ms", "p99_ms", "server_cpu",
                                            "other_cpu")} for r in rounds]
        rows.append(row)
    return rows


def peer_rows(peer_rounds: dict[str, list[dict[str, Any]]],
              inproc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per peer and concurrency (CNN, batch 1): medians and the ratio to
    ``Session.run`` at batch 1."""
    rows = []
    base = inproc["session_run"][TARGETS_MODEL]["b1"]["images_per_s"]
    for key, rounds in peer_rounds.items():
        peer, c = key.split("/")
        row = median_dict(rounds)
        row.pop("extra", None)
        row.update(peer=peer, concurrency=int(c[1:]), x_session_run=row["rps"] / base)
        row["rounds"] = [{k: r[k] for k in ("rps", "p50_ms", "p99_ms", "server_cpu",
                                            "other_cpu")} for r in rounds]
        rows.append(row)
    return rows


def _row(report: dict[str, Any], mode: str, batch: int, enc: str,
         conc: int, workers: int = 1) -> dict[str, Any] | None:
    for r in report["served"]:
        if (r["mode"], r.get("workers", 1), r["model"], r["batch"], r["encoding"],
                r["concurrency"]) == (mode, workers, TARGETS_MODEL, batch, enc, conc):
            return r
    return None


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets of issue 5 with the figures measured (None: not measured in this run)."""
    codec = report["codec_floats_per_s"]
    out: list[dict[str, Any]] = []

    def add(name: str, values: dict[str, float | None], limit: float, higher: bool,
            unit: str) -> None:
        def met(v: float | None) -> bool | None:
            return None if v is None else (v >= limit if higher else v <= limit)

        first = next(iter(values.values()))
        out.append({"target": name, "value": first, "met": met(first), "limit": limit,
                    "direction": ">=" if higher else "<=", "unit": unit,
                    "by_baseline": {k: {"value": v, "met": met(v)} for k, v in values.items()}})

    for enc, floor in (("float_val", 2e6), ("tensor_content", 50e6)):
        c = codec.get(enc, {})
        for op, label in (("decode_parse", "decode incl. XML parse"),
                          ("decode", "decode of the parsed element"), ("encode", "encode")):
            add(f"codec {enc} {label}", {"": c.get(op)}, floor, True, "floats/s")
    r = _row(report, "off", 1, "tensor_content", 1)
    add("c1 b1 tensor_content: served p50 - in-process p50",
        {k: r[f"p50_over_{k}_ms"] if r else None for k, _ in BASES}, 1.5, False, "ms")
    r = _row(report, "off", 1, "tensor_content", 8)
    add("c8 b1 tensor_content, batching off: served / in-process b1 rate",
        {k: r[f"x_{k}"] if r else None for k, _ in BASES}, 0.5, True, "x")
    for conc in (8, 32):
        r = _row(report, "on", 1, "tensor_content", conc)
        add(f"c{conc} b1 tensor_content, batching on: served / in-process b1 rate",
            {k: r[f"x_{k}"] if r else None for k, _ in BASES}, 1.0, True, "x")
    for mode, mem in report["memory"].items():
        add(f"peak RSS c32 / c1 ({mode})", {"": mem.get("ratio_max_vs_c1")}, 1.2,
            False, "x")
    return out


def print_report(report: dict[str, Any]) -> None:
    s = report["settings"]
    print("\n== in-process, this process (intra-op %d, inter-op %d threads) ==" % (
        s["intra_op_threads"], s["inter_op_threads"]))
    for kind, label in BASES:
        for model, by_batch in report["inprocess"][kind].items():
            for b, r in by_batch.items():
                print(f"  {label:16s} {model:7s} {b:4s} {r['runs_per_s']:8.0f} runs/s "
                      f"{r['images_per_s']:8.0f} img/s  p50 {r['p50_ms']:6.2f} ms  "
                      f"CPU {r['cpu_ms_per_run']:5.2f} ms/run  other CPU {r['other_cpu']:.2f}")
    print("\n== codec on one CNN batch, 25,088 floats (floats/s, best of each round) ==")
    print(f"  {'encoding':15s} {'decode+parse':>13s} {'decode':>13s} {'encode':>13s}")
    for enc, r in report["codec_floats_per_s"].items():
        print(f"  {enc:15s} {fmt_rate(r['decode_parse']):>13s} {fmt_rate(r['decode']):>13s} "
              f"{fmt_rate(r['encode']):>13s}")
    print("\n== served, medians of %d rounds (x LMR / x SR: images/s over the in-process "
          "LoadedModel.run / Session.run rate at the same batch) ==" % s["rounds"])
    print(f"  {'batching':8s} {'w':>1s} {'model':6s} {'b':>2s} {'encoding':14s} {'c':>2s} "
          f"{'req/s':>6s} "
          f"{'img/s':>6s} {'p50 ms':>7s} {'p99 ms':>7s} {'x LMR':>6s} {'x SR':>5s} "
          f"{'srvCPU':>6s} {'ms/req':>6s} {'RSS MiB':>7s} {'err':>3s} {'other':>5s}")
    for r in sorted(report["served"], key=lambda r: (r["mode"], r.get("workers", 1), r["model"],
                                                     r["batch"], r["encoding"],
                                                     r["concurrency"])):
        print(f"  {r['mode']:8s} {r.get('workers', 1):1d} {r['model']:6s} {r['batch']:2d} "
              f"{r['encoding']:14s} "
              f"{r['concurrency']:2d} {r['rps']:6.0f} {r['images_per_s']:6.0f} "
              f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['x_loaded_model_run']:6.2f} "
              f"{r['x_session_run']:5.2f} {r['server_cpu'] * 100:5.0f}% "
              f"{r['server_cpu_ms_per_req']:6.2f} {r['rss_peak_mib']:7.0f} {r['errors']:3.0f} "
              f"{r['other_cpu']:5.2f}")
    print("\n== server peak resident memory (VmHWM summed over the server's processes after "
          "each concurrency block of round 1, MiB) ==")
    for mode, mem in report["memory"].items():
        print(f"  batching {mode:6s}: " + ", ".join(
            f"{k} {v:.2f}" if k.startswith("ratio") else f"{k} {v:.0f}" for k, v in mem.items()))
    print("\n== issue 5's targets (model %s, one worker; ratios judged on LoadedModel.run, "
          "Session.run beside) ==" % TARGETS_MODEL)
    for t in report["targets"]:
        parts = []
        for kind, v in t["by_baseline"].items():
            val = v["value"]
            shown = "not measured" if val is None else (
                fmt_rate(val) if t["unit"] == "floats/s" else f"{val:.2f}")
            label = dict(BASES).get(kind, "")
            parts.append(f"{shown}{' vs ' + label if label else ''}"
                         + ("" if kind == next(iter(t["by_baseline"])) or v["met"] is None
                            else f" ({'met' if v['met'] else 'missed'})"))
        mark = {True: "MET ", False: "MISS", None: "----"}[t["met"]]
        limit = fmt_rate(t["limit"]) if t["unit"] == "floats/s" else t["limit"]
        print(f"  [{mark}] {t['target']}: {'; '.join(parts)} {t['unit']} "
              f"(target {t['direction']} {limit})")
