"""Issue 9's table and targets: the HTTP front, worker processes and the peers, on the CNN.

Per stack and concurrency (1, 8, 32), batch-1 requests of the CNN: the served requests/s over
the in-process ``Session.run`` batch-1 images/s of the same run (the issue's ratio), p99 at
32 and the server's CPU per request. "Best workers" is, per batching mode and encoding, the
worker count with the highest mean ratio at concurrencies 8 and 32. One worker is compared
row by row with a previous run (``before``: ``benchmarks/results/before-granian.json``, the
cheroot front). When a target is missed the CPU split of each phase (server, load generator,
other, in cores of the 2) says whether the machine, not the server, was the limit.
"""

from __future__ import annotations

import statistics
from typing import Any

from report import TARGETS_MODEL

STACKS = (("on", "tensor_content"), ("on", "float_val"), ("off", "tensor_content"),
          ("off", "float_val"))
PEER_NAMES = {"flask": "Flask + gunicorn, 2 workers, JSON", "mlserver": "MLServer 1.7"}


def _cnn_b1(report: dict[str, Any], mode: str, enc: str) -> dict[int, dict[int, dict[str, Any]]]:
    """workers -> concurrency -> served row."""
    out: dict[int, dict[int, dict[str, Any]]] = {}
    for r in report["served"]:
        if (r["model"], r["batch"], r["mode"], r["encoding"]) == (TARGETS_MODEL, 1, mode, enc):
            out.setdefault(r.get("workers", 1), {})[r["concurrency"]] = r
    return out


def _line(name: str, by_conc: dict[int, dict[str, Any]], base: float) -> dict[str, Any]:
    return {"stack": name,
            "ratio": {c: r["rps"] / base for c, r in sorted(by_conc.items())},
            "rps": {c: r["rps"] for c, r in sorted(by_conc.items())},
            "p99_ms": {c: r["p99_ms"] for c, r in sorted(by_conc.items())},
            "cpu_ms_per_req": {c: r["server_cpu_ms_per_req"] for c, r in sorted(by_conc.items())},
            "cpu_split": {c: {"server": r["server_cpu"], "loadgen": r["client_cpu"],
                              "other": r["other_cpu"]} for c, r in sorted(by_conc.items())},
            "errors": sum(int(r["errors"]) for r in by_conc.values())}


def _best(by_workers: dict[int, dict[int, dict[str, Any]]], base: float) -> int | None:
    def score(w: int) -> float:
        rows = by_workers[w]
        cs: list[int] = [c for c in (8, 32) if c in rows] or list(rows)
        return statistics.mean(rows[c]["rps"] / base for c in cs)

    return max(by_workers, key=score) if by_workers else None


def _target(name: str, value: float | None, limit: float, higher: bool, unit: str,
            detail: str = "") -> dict[str, Any]:
    met = None if value is None else (value >= limit if higher else value < limit)
    return {"target": name, "value": value, "limit": limit, "unit": unit, "met": met,
            "direction": ">=" if higher else "<", "detail": detail}


def evaluate_issue9(report: dict[str, Any], before: dict[str, Any] | None,
                    before_name: str) -> dict[str, Any]:
    """The table rows, the best worker counts, the one-worker comparison and the targets."""
    base = report["inprocess"]["session_run"][TARGETS_MODEL]["b1"]["images_per_s"]
    lines: list[dict[str, Any]] = []
    best: dict[str, int] = {}
    for mode, enc in STACKS:
        by_w = _cnn_b1(report, mode, enc)
        if not by_w:
            continue
        b = _best(by_w, base)
        assert b is not None
        best[f"{mode}/{enc}"] = b
        name = f"tfsoap, {enc}, batching {mode}"
        if 1 in by_w:
            lines.append(_line(f"{name}, 1 worker", by_w[1], base) | {"workers": 1})
        if b != 1 or 1 not in by_w:
            lines.append(_line(f"{name}, best: {b} workers", by_w[b], base) | {"workers": b})
        else:
            lines[-1]["stack"] += " (best)"
    peers: list[dict[str, Any]] = []
    for peer in sorted({r["peer"] for r in report.get("peers", [])}):
        rows = {r["concurrency"]: r for r in report["peers"] if r["peer"] == peer}
        label = report.get("peer_commands", {}).get(peer, {}).get("label", PEER_NAMES[peer])
        peers.append(_line(label, rows, base) | {"peer": peer})
    lines.extend(peers)

    targets: list[dict[str, Any]] = []
    by_stack = {(ln["stack"].split(",")[1].strip(), ln["stack"].split(",")[2].strip()): ln
                for ln in lines if "best" in ln["stack"]}
    tc = by_stack.get(("tensor_content", "batching on"))
    fv = by_stack.get(("float_val", "batching on"))
    for c in (8, 32):
        targets.append(_target(
            f"tensor_content, batching on, best workers ({tc['workers'] if tc else '-'}): "
            f"c={c} served / Session.run b1", tc["ratio"].get(c) if tc else None, 1.5, True,
            "x"))
    targets.append(_target("tensor_content, batching on, best workers: p99 at c=32",
                           tc["p99_ms"].get(32) if tc else None, 30.0, False, "ms"))
    targets.append(_target(
        f"float_val, batching on, best workers ({fv['workers'] if fv else '-'}): c=32 served / "
        "Session.run b1", fv["ratio"].get(32) if fv else None, 0.95, True, "x"))
    if fv and peers:
        margins = {c: fv["ratio"][c] / max(p["ratio"].get(c, 0.0) for p in peers)
                   for c in fv["ratio"] if any(c in p["ratio"] for p in peers)}
        worst = min(margins.values()) if margins else None
        targets.append(_target(
            "float_val, batching on, best workers: ahead of every peer at every concurrency "
            "(lowest float_val / best peer)", worst, 1.0, True, "x",
            ", ".join(f"c={c} {m:.2f}x" for c, m in sorted(margins.items()))))
    else:
        targets.append(_target("float_val ahead of every peer", None, 1.0, True, "x",
                               "no peer measured"))

    comparison = one_worker_vs_before(report, before) if before else []
    if comparison:
        worst_row = min(comparison, key=lambda r: r["ratio"])
        targets.append(_target(
            f"one worker no slower than before ({before_name}): lowest req/s now / before over "
            f"{len(comparison)} rows", worst_row["ratio"], 1.0, True, "x",
            f"lowest: {worst_row['key']}; median "
            f"{statistics.median(r['ratio'] for r in comparison):.2f}x"
            + _machine_note(comparison)))
    else:
        targets.append(_target("one worker no slower than before", None, 1.0, True, "x",
                               f"no previous figures ({before_name})"))
    attack = report.get("attack")
    if attack:
        targets.append(_target("under attack: good-request p50 (c=8, tensor_content)",
                               attack["under_attack"]["p50_ms"], 10.0, False, "ms"))
        targets.append(_target("under attack: server memory growth",
                               attack["rss_growth_mib"], 50.0, False, "MiB"))
    else:
        targets.append(_target("under attack", None, 10.0, False, "ms", "not run"))
    others = sorted(r["other_cpu"] for r in [*report["served"], *report.get("peers", [])])
    disturbed = {"median_other_cpu": statistics.median(others) if others else 0.0,
                 "phases": len(others),
                 "phases_over_0.3_cores": sum(1 for o in others if o > 0.3)}
    return {"machine_disturbance": disturbed,
            "baseline_session_run_b1_images_per_s": base,
            "baseline_session_run_b32_images_per_s":
                report["inprocess"]["session_run"][TARGETS_MODEL].get("b32", {}).get(
                    "images_per_s"),
            "best_workers": best, "table": lines, "one_worker_vs_before": comparison,
            "targets": targets}


def one_worker_vs_before(report: dict[str, Any], before: dict[str, Any]) -> list[dict[str, Any]]:
    """Every served row measured both now (one worker) and before: req/s now / before, and
    the same ratio with each run's requests/s divided by that run's in-process
    ``Session.run`` batch-1 images/s of its model (``machine_ratio``): the saved run was taken
    on another day, and this shared machine's speed moves by up to half between hours
    (``front_ab.py`` measures the two fronts side by side instead)."""
    prev = {(r["mode"], r["model"], r["batch"], r["encoding"], r["concurrency"]): r
            for r in before.get("served", []) if r.get("workers", 1) == 1}

    def baseline(run: dict[str, Any], model: str) -> float | None:
        try:
            return float(run["inprocess"]["session_run"][model]["b1"]["images_per_s"])
        except (KeyError, TypeError):
            return None

    out = []
    for r in report["served"]:
        k = (r["mode"], r["model"], r["batch"], r["encoding"], r["concurrency"])
        if r.get("workers", 1) == 1 and k in prev and prev[k]["rps"] > 0:
            now_base, before_base = baseline(report, r["model"]), baseline(before, r["model"])
            speed = before_base / now_base if now_base and before_base else None
            out.append({"key": "{}/{}/b{}/{}/c{}".format(*k), "before_rps": prev[k]["rps"],
                        "now_rps": r["rps"], "ratio": r["rps"] / prev[k]["rps"],
                        "machine_ratio": r["rps"] / prev[k]["rps"] * speed if speed else None,
                        "before_cpu_ms_per_req": prev[k].get("server_cpu_ms_per_req"),
                        "now_cpu_ms_per_req": r["server_cpu_ms_per_req"]})
    return out


def _machine_note(comparison: list[dict[str, Any]]) -> str:
    """The comparison with each run's figures divided by its in-process ``Session.run`` b1."""
    scaled = [r["machine_ratio"] for r in comparison if r.get("machine_ratio")]
    if not scaled:
        return ""
    return (f"; divided by each run's in-process Session.run b1: lowest {min(scaled):.2f}x, "
            f"median {statistics.median(scaled):.2f}x (a saved run of another day: "
            "front_ab.py compares side by side)")


def print_issue9(report: dict[str, Any]) -> None:
    """Issue 9's table, the one-worker comparison, the attack and the targets."""
    i9 = report["issue9"]
    concs = sorted({c for ln in i9["table"] for c in ln["ratio"]})
    print("\n== issue 9: CNN batch 1, served req/s / in-process Session.run batch-1 img/s "
          f"({i9['baseline_session_run_b1_images_per_s']:,.0f} here) ==")
    head = "".join(f"{'c=' + str(c):>8s}" for c in concs)
    print(f"  {'stack':58s}{head} {'p99@32':>8s} {'CPU ms/req':>18s}")
    for ln in i9["table"]:
        ratios = "".join(f"{ln['ratio'][c]:7.2f}x" if c in ln["ratio"] else f"{'-':>8s}"
                         for c in concs)
        p99 = ln["p99_ms"].get(32)
        cpu = "/".join(f"{ln['cpu_ms_per_req'][c]:.2f}" for c in concs if c in ln["cpu_ms_per_req"])
        print(f"  {ln['stack'][:58]:58s}{ratios} {(f'{p99:.1f} ms' if p99 else '-'):>8s} "
              f"{cpu:>18s}" + (f"  errors {ln['errors']}" if ln["errors"] else ""))
    for name, why in report.get("peers_left_out", {}).items():
        print(f"  (peer {name} not measured: {why.splitlines()[0][:200]})")
    if report.get("mlserver_trials"):
        print("  MLServer trials at c=8: " + ", ".join(
            f"{k} {v:.0f} req/s" for k, v in report["mlserver_trials"].items()))
    cmp_rows = [r for r in i9["one_worker_vs_before"] if "/cnn/b1/" in r["key"]]
    if cmp_rows:
        print("\n== one worker vs before (the cheroot front), CNN batch 1 (every row in the "
              "JSON) ==")
        for r in cmp_rows:
            print(f"  {r['key']:34s} {r['before_rps']:7.0f} -> {r['now_rps']:7.0f} req/s "
                  f"{r['ratio']:5.2f}x ({r.get('machine_ratio') or 0:4.2f}x by in-process "
                  f"speed)   CPU {r['before_cpu_ms_per_req'] or 0:.2f} -> "
                  f"{r['now_cpu_ms_per_req']:.2f} ms/req")
    attack = report.get("attack")
    if attack:
        u, c, a = attack["under_attack"], attack["calm"], attack["attacker"]
        print(f"\n== attack ({attack['counts']} held open, workers 1, {u['window_s']:.0f} s) ==")
        print(f"  good Predicts c=8: p50 {u['p50_ms']:.2f} ms (calm {c['p50_ms']:.2f}), p99 "
              f"{u['p99_ms']:.1f} ms, {u['rps']:.0f} req/s (calm {c['rps']:.0f}), errors "
              f"{u['errors']}")
        print(f"  server RSS {attack['rss_before_mib']:.0f} MiB -> peak "
              f"{attack['rss_peak_under_attack_mib']:.0f} -> after {attack['rss_after_mib']:.0f}"
              f"; attacker: opened {a['opened']}, closed by the server {a['closed_by_server']}, "
              f"open min {a['open_min']} mean {a['open_mean']:.0f}, connect failures "
              f"{a['connect_failures']}")
    d = i9.get("machine_disturbance")
    if d and d["phases_over_0.3_cores"]:
        print(f"\n  NOTE: other processes used a median of {d['median_other_cpu']:.2f} cores "
              f"during the phases ({d['phases_over_0.3_cores']} of {d['phases']} above 0.3): "
              "the machine was shared, so rates and ratios are low and noisy, and the "
              "comparison with an idle-machine 'before' says little.")
    print("\n== issue 9's targets ==")
    for t in i9["targets"]:
        mark = {True: "MET ", False: "MISS", None: "----"}[t["met"]]
        v = "not measured" if t["value"] is None else f"{t['value']:.2f}"
        print(f"  [{mark}] {t['target']}: {v} {t['unit']} (target {t['direction']} "
              f"{t['limit']}){' -- ' + t['detail'] if t['detail'] else ''}")
    if any(t["met"] is False for t in i9["targets"]):
        print("\n== CPU split per phase (cores of the machine: server / load generator / "
              "other), CNN batch 1 ==")
        for ln in i9["table"]:
            print(f"  {ln['stack'][:58]:58s} " + "  ".join(
                f"c={c}: {s['server']:.2f}/{s['loadgen']:.2f}/{s['other']:.2f}"
                for c, s in ln["cpu_split"].items()))
