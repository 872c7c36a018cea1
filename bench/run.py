"""The benchmark orchestrator (run by scripts/bench, which builds what it needs).

    python3 bench/run.py [--quick] [--skip-callgrind]

Starts nginx (bench/nginx.py) as every upstream, then measures build-bench/handler
with bench/loadgen (the invocation protocol, keep-alive, C for precise latency):
cold start, steady state at concurrency 1/8/64 (warn and info logging), memory,
upstream economy (from nginx's access log) and instructions per event
(callgrind, difference of two runs so start-up and shutdown cancel out); plus
the baselines: bench/baseline_ready (start-up floor) and wrk against nginx for
the same request shapes (loopback floor per request). Prints one table and
writes bench/out/results.json. Every figure with several runs is
{median, min, max, runs}.

Everything it starts is stopped on exit (its own child processes, by pid).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nginx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
BIN = OUT / "bin"
HANDLER = Path(os.environ.get("BENCH_HANDLER") or REPO / "build-bench" / "handler")
TICK = os.sysconf("SC_CLK_TCK")
CHILDREN = []


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def proc_cpu_s(pid, which="both"):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]) / TICK, int(fields[12]) / TICK  # fields 14, 15
    return {"both": user + system, "user": user, "sys": system}[which]


def proc_mem_kb(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM", "VmRSS")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def wait_ready(port, timeout=60.0, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before it was ready")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1."):
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"nothing answered on port {port}")


class Bench:
    def __init__(self, quick):
        self.quick = quick
        names = ["entra", "arm", "aml", "ingestion", "floor_tls", "floor_http", "handler"]
        self.ports = dict(zip(names, nginx.free_ports(len(names))))
        self.certs = nginx.make_certs(OUT / "certs")
        # The handler trusts the system's roots plus the bench CA, as in
        # production it trusts the image's bundle (~140 roots): the CA store a
        # TLS context loads costs what it would cost there.
        self.ca_bundle = OUT / "certs" / "bundle.pem"
        system = Path("/etc/ssl/certs/ca-certificates.crt")
        self.ca_bundle.write_bytes((system.read_bytes() if system.exists() else b"") +
                                   self.certs[0].read_bytes())
        self.ndir = OUT / "nginx"
        self.access_log = self.ndir / "access.log"
        self.logs = OUT / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.nginx = None

    # -- processes ---------------------------------------------------------------

    def start_nginx(self):
        if self.access_log.exists():
            self.access_log.unlink()
        conf = nginx.write_conf(self.ndir, self.ports, self.certs)
        self.nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(self.ndir), "-g",
                                       "daemon off;"], stderr=subprocess.DEVNULL)
        CHILDREN.append(self.nginx)
        wait_ready(self.ports["floor_http"], 10, self.nginx)

    def env(self, level="warn"):
        p = self.ports
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
        env.update({
            "FUNCTIONS_CUSTOMHANDLER_PORT": str(p["handler"]),
            "FUNCTIONS_APP_ROOT_PATH": str(REPO),
            "AZURE_TENANT_ID": nginx.TENANT,
            "AZURE_CLIENT_ID": "11111111-0000-4000-8000-000000000001",
            "AZURE_CLIENT_SECRET": "bench-not-a-secret",
            "AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{p['entra']}/",
            "AZURE_RESOURCE_MANAGER_ENDPOINT": f"https://127.0.0.1:{p['arm']}",
            "APPLICATIONINSIGHTS_CONNECTION_STRING":
                f"InstrumentationKey={nginx.IKEY};IngestionEndpoint=https://127.0.0.1:"
                f"{p['ingestion']}/",
            "SSL_CERT_FILE": str(self.ca_bundle),
            "HANDLER_LOG_LEVEL": level,
            "SUBSCRIPTION_ID": "6f3a1b2c-0000-4000-8000-000000000001",
            "AML_RESOURCE_GROUP": "ml-rg",
            "AML_WORKSPACE_NAME": "ml-ws",
        })
        return env

    def start_handler(self, level="warn", prefix=(), name="handler"):
        out = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen([*prefix, str(HANDLER)], env=self.env(level), stdout=out,
                                stderr=subprocess.STDOUT)
        out.close()
        CHILDREN.append(proc)
        wait_ready(self.ports["handler"], 120 if prefix else 10, proc)
        return proc

    @staticmethod
    def stop(proc, timeout=120):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in CHILDREN:
            CHILDREN.remove(proc)

    def loadgen(self, concurrency, events, check=True):
        r = subprocess.run([str(BIN / "loadgen"), "run", "--port", str(self.ports["handler"]),
                            "--concurrency", str(concurrency), "--events", str(events)],
                           capture_output=True, text=True)
        if r.returncode != 0 and check:
            raise RuntimeError(f"loadgen failed: {r.stderr.strip()} {r.stdout.strip()}")
        return json.loads(r.stdout)

    def log_offset(self):
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def log_since(self, offset):
        time.sleep(0.05)
        with open(self.access_log, "rb") as f:
            f.seek(offset)
            return nginx.parse_log(f.read().decode(), self.ports)

    # -- measurements ----------------------------------------------------------

    def cold_start(self, runs):
        res = {"handler_ready_ms": [], "handler_first_event_ms": [], "baseline_ready_ms": []}
        for i in range(runs):
            env = self.env()
            offset = self.log_offset()
            r = subprocess.run([str(BIN / "loadgen"), "cold", "--port",
                                str(self.ports["handler"]), "--invoke", "--log",
                                str(self.logs / "cold.log"), "--", str(HANDLER)],
                               env=env, capture_output=True, text=True)
            d = json.loads(r.stdout)
            kinds = {k for u in self.log_since(offset).values() for k in u["kinds"]}
            if r.returncode != 0 or not {"token", "discovery", "run", "track"} <= kinds:
                raise RuntimeError(f"cold start run {i}: {d} upstream calls {kinds}")
            res["handler_ready_ms"].append(d["ready_ms"])
            res["handler_first_event_ms"].append(d["first_ms"])
            r = subprocess.run([str(BIN / "loadgen"), "cold", "--port",
                                str(self.ports["handler"]), "--", str(BIN / "baseline_ready")],
                               env=env, capture_output=True, text=True)
            res["baseline_ready_ms"].append(json.loads(r.stdout)["ready_ms"])
        return {k: stats(v) for k, v in res.items()}

    def steady(self, concurrency, events, runs, level="warn"):
        rows = []
        for _ in range(runs):
            proc = self.start_handler(level, name=f"steady-{level}")
            self.loadgen(concurrency, max(50, concurrency * 4))  # warm: token, caches
            cpu0 = {w: proc_cpu_s(proc.pid, w) for w in ("both", "user", "sys")}
            d = self.loadgen(concurrency, events)
            for w, key in (("both", "cpu_us_per_event"), ("user", "user_us_per_event"),
                           ("sys", "sys_us_per_event")):
                d[key] = (proc_cpu_s(proc.pid, w) - cpu0[w]) / events * 1e6
            d.update(proc_mem_kb(proc.pid))
            self.stop(proc)
            rows.append(d)
        keys = ("cpu_us_per_event", "user_us_per_event", "sys_us_per_event", "p50_us", "p99_us", "events_per_s", "VmHWM", "VmRSS")
        out = {k: stats([r[k] for r in rows]) for k in keys}
        out.update(concurrency=concurrency, events=events, log_level=level,
                   errors=sum(r["errors"] for r in rows))
        return out

    def economy(self, concurrency, events):
        offset = self.log_offset()
        proc = self.start_handler(name="economy")
        d = self.loadgen(concurrency, events)
        self.stop(proc)
        up = self.log_since(offset)
        per_k = lambda n: n * 1000.0 / events
        kinds = {}
        for u in up.values():
            for k, n in u["kinds"].items():
                kinds[k] = kinds.get(k, 0) + n
        return {
            "concurrency": concurrency, "events": events, "events_per_s": d["events_per_s"],
            "per_1000_events": {
                "token_requests": per_k(kinds.get("token", 0)),
                "discovery_requests": per_k(kinds.get("discovery", 0)),
                "parent_run_lookups": per_k(kinds.get("parent", 0)),
                "run_details_requests": per_k(kinds.get("details", 0)),
                "run_requests": per_k(kinds.get("run", 0)),
                "metrics_requests": per_k(kinds.get("metrics", 0)),
                "ingestion_posts": per_k(kinds.get("track", 0)),
                "non_200": per_k(kinds.get("non200", 0)),
                "tcp_connections": {n: per_k(u["connections"]) for n, u in up.items()},
                "tls_full_handshakes": {n: per_k(u["tls_full"]) for n, u in up.items()},
                "tls_resumed_handshakes": {n: per_k(u["tls_resumed"]) for n, u in up.items()},
            },
            "events_per_ingestion_post": events / max(1, kinds.get("track", 0)),
            "raw": up,
        }

    def growth(self, checkpoints):
        """RSS at each checkpoint (events so far) of one handler at c=64. The
        exporter's two dedup sets (event ids, measured runs) are bounded at
        65,536 entries each (handler/base/dedup.h) and fill first: growth after that
        is what would be a leak."""
        proc = self.start_handler(name="growth")
        rss, done = {}, 0
        for n in checkpoints:
            self.loadgen(64, n - done)
            done = n
            rss[str(n)] = proc_mem_kb(proc.pid)["VmRSS"]
        hwm = proc_mem_kb(proc.pid)["VmHWM"]
        self.stop(proc)
        first, last = checkpoints[0], checkpoints[-1]
        full = [n for n in checkpoints if n >= 70000]
        return {"concurrency": 64, "rss_kb": rss, "hwm_kb": hwm, "first": first,
                "total": last, "growth_kb": rss[str(last)] - rss[str(first)],
                "after_caches_full_from": full[0] if len(full) > 1 else None,
                "growth_after_caches_full_kb":
                    rss[str(last)] - rss[str(full[0])] if len(full) > 1 else None}

    def startup_profile(self):
        """Instructions from exec to ready (callgrind; the handler is stopped as
        soon as GET / answers), and the top inclusive functions."""
        outfile = OUT / "callgrind.startup.out"
        for stale in OUT.glob(outfile.name + "*"):
            stale.unlink()
        proc = self.start_handler(prefix=(*CALLGRIND,
                                          f"--callgrind-out-file={outfile}"),
                                  name="callgrind-startup")
        self.stop(proc, timeout=120)
        top = callgrind_top(outfile, 25)
        return {"ir_total": callgrind_total(outfile), "top_inclusive": top["inclusive"],
                "top_self": top["self"], "file": str(outfile)}

    def callgrind(self, small, large, concurrency=8):
        if not shutil.which("valgrind"):
            return None
        totals = {}
        for n in (small, large):
            outfile = OUT / f"callgrind.{n}.out"
            for stale in OUT.glob(outfile.name + "*"):
                stale.unlink()
            proc = self.start_handler(prefix=(*CALLGRIND,
                                              f"--callgrind-out-file={outfile}"),
                                      name=f"callgrind-{n}")
            self.loadgen(concurrency, n)
            self.stop(proc, timeout=300)
            totals[n] = callgrind_total(outfile)
        per_event = (totals[large] - totals[small]) / (large - small)
        top = callgrind_top(OUT / f"callgrind.{large}.out")
        return {"events": [small, large], "concurrency": concurrency,
                "ir_total": {str(k): v for k, v in totals.items()},
                "ir_per_event": per_event, "top_self": top["self"],
                "top_inclusive": top["inclusive"], "file": str(OUT / f"callgrind.{large}.out")}

    # -- baselines -------------------------------------------------------------

    def wrk(self, url, concurrency, seconds, body=None):
        script = None
        args = ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d",
                f"{seconds}s", "--latency"]
        if body is not None:
            script = OUT / f"wrk-{len(body)}.lua"
            script.write_text("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = "
                              "\"application/json\"\nwrk.body = " + lua_string(body) + "\n")
            args += ["-s", str(script)]
        r = subprocess.run(args + [url], capture_output=True, text=True, check=True)
        return parse_wrk(r.stdout)

    def baselines(self, runs, seconds, body):
        p = self.ports
        shapes = {
            "invocation_post_http": (f"http://127.0.0.1:{p['floor_http']}/function_app", body),
            "run_details_get_tls": (
                f"https://127.0.0.1:{p['floor_tls']}/history/v1.0/subscriptions/"
                "6f3a1b2c-0000-4000-8000-000000000001/resourceGroups/ml-rg/providers/"
                "Microsoft.MachineLearningServices/workspaces/ml-ws/experimentids/"
                "82c99df0-345e-47f5-9f37-17182d398f02/runs/00000001-0001-4000-8000-"
                "0123456789ab/details", None),
            "track_post_tls": (f"https://127.0.0.1:{p['floor_tls']}/v2.1/track", "x" * 1500),
        }
        out = {}
        for name, (url, b) in shapes.items():
            for c in ((1, 8, 64) if name == "invocation_post_http" else (1,)):
                rows = [self.wrk(url, c, seconds, b) for _ in range(runs)]
                out[f"{name}_c{c}"] = {k: stats([r[k] for r in rows])
                                       for k in ("p50_us", "p99_us", "requests_per_s")}
        return out


def lua_string(text):
    return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\""


def parse_wrk(text):
    def us(v):
        m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
        return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6}[m[2]]

    lat = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", text, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
    return {"p50_us": us(lat["50"]), "p99_us": us(lat["99"]), "requests_per_s": rps}


# --vgdb=no: no gdbserver, so `callgrind_control -d/-z` run by anyone else on
# the machine (it addresses every callgrind process of the user) cannot dump or
# zero this run's counters mid-way; callgrind_total also refuses a split file.
CALLGRIND = ("valgrind", "--tool=callgrind", "--vgdb=no")


def callgrind_total(path):
    text = path.read_text(errors="replace")
    if "\npart: 1\n" not in text or list(path.parent.glob(path.name + ".*")):
        raise RuntimeError(f"{path} was dumped in parts: its counts are not the whole run")
    for line in text.splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def callgrind_top(path, n=15):
    out = {}
    for mode, flag in (("self", []), ("inclusive", ["--inclusive=yes"])):
        r = subprocess.run(["callgrind_annotate", *flag, "--threshold=100", str(path)],
                           capture_output=True, text=True)
        rows = []
        for line in r.stdout.splitlines():
            m = re.match(r"^\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)$", line)
            if m and "PROGRAM TOTALS" not in line and len(rows) < n:
                rows.append({"ir": int(m[1].replace(",", "")), "percent": float(m[2]),
                             "function": m[3].strip()[:120]})
        out[mode] = rows
    return out


def invocation_body():
    ev = subprocess.run([str(BIN / "loadgen"), "file", "--events", "1"], capture_output=True,
                        text=True, check=True).stdout
    event = json.loads(ev)[0]
    return json.dumps({"Data": {"event": event}, "Metadata": {"data": event["data"], "sys": {
        "MethodName": "function_app", "UtcNow": event["eventTime"],
        "RandGuid": "00000000-0000-4000-8000-000000000000"}}}, separators=(",", ":"))


# -- report ----------------------------------------------------------------------


def fmt(s, scale=1.0, digits=1):
    if s is None:
        return "-"
    f = f"{{:.{digits}f}}"
    return (f.format(s["median"] * scale) + " (" + f.format(s["min"] * scale) + "-" +
            f.format(s["max"] * scale) + ")")


def targets(r):
    cold, st64 = r["cold_start"], r["steady"]["c64"]
    cpu = min(r["steady"][k]["cpu_us_per_event"]["median"] for k in ("c8", "c64"))
    eco = r["economy"]["per_1000_events"]
    cg, sp = r.get("callgrind"), r.get("startup_profile")
    rows = [
        ("ready within 5 ms of exec (median)", cold["handler_ready_ms"]["median"] <= 5,
         f"{cold['handler_ready_ms']['median']:.1f} ms"),
    ]
    if sp:
        rows.append(("<= 5 M instructions exec -> ready", sp["ir_total"] <= 5e6,
                     f"{sp['ir_total'] / 1e6:.2f} M"))
    rows.append(("handler CPU <= 150 us per event (best of c=8, c=64, warn)", cpu <= 150,
                 f"{cpu:.0f} us"))
    if cg:
        rows.append(("<= 700 k instructions per event (callgrind, c=8)",
                     cg["ir_per_event"] <= 700e3, f"{cg['ir_per_event'] / 1e3:.0f} k"))
    return rows + [
        ("peak RSS <= 14 MB at concurrency 64", st64["VmHWM"]["median"] <= 14 * 1024,
         f"{st64['VmHWM']['median'] / 1024:.1f} MB"),
        (f"no RSS growth {r['growth']['first']} -> {r['growth']['total']} events",
         r["growth"]["growth_kb"] <= 1024, f"{r['growth']['growth_kb']:+d} kB" + (
             f" (of which {r['growth']['growth_after_caches_full_kb']:+d} kB after "
             f"{r['growth']['after_caches_full_from']} events, once the bounded dedup "
             "sets are full)" if r["growth"]["after_caches_full_from"] else "")),
        ("<= 1 token request per 1,000 events", eco["token_requests"] <= 1,
         f"{eco['token_requests']:.2f}"),
        ("<= 1 discovery request per 1,000 events", eco["discovery_requests"] <= 1,
         f"{eco['discovery_requests']:.2f} (ARM + discovery document)"),
        ("c=32: >= 8 events per ingestion POST", r["economy"]["events_per_ingestion_post"] >= 8,
         f"{r['economy']['events_per_ingestion_post']:.1f}"),
    ]


def table(r):
    L = []
    add = L.append
    cold = r["cold_start"]
    add("| figure | value: median (min-max) | baseline | ratio |")
    add("|---|---|---|---|")
    br = cold["baseline_ready_ms"]["median"]
    add(f"| cold: exec -> first GET / answered (ms) | {fmt(cold['handler_ready_ms'], 1, 2)} | "
        f"baseline_ready {fmt(cold['baseline_ready_ms'], 1, 2)} | "
        f"x{cold['handler_ready_ms']['median'] / br:.1f} |")
    add(f"| cold: exec -> first invocation answered, enriched + exported (ms) | "
        f"{fmt(cold['handler_first_event_ms'], 1, 2)} | | |")
    for key, st in r["steady"].items():
        c = st["concurrency"]
        fl = r["baselines"].get(f"invocation_post_http_c{c}")
        add(f"| c={c} {st['log_level']}: handler CPU per event, user+sys (us) | "
            f"{fmt(st['cpu_us_per_event'], 1, 0)} (user {st['user_us_per_event']['median']:.0f}"
            f", sys {st['sys_us_per_event']['median']:.0f}) | | |")
        add(f"| c={c} {st['log_level']}: latency p50 (ms) | {fmt(st['p50_us'], 1e-3, 2)} | "
            + (f"nginx same POST {fmt(fl['p50_us'], 1e-3, 3)} | "
               f"x{st['p50_us']['median'] / fl['p50_us']['median']:.0f} |" if fl else "| |"))
        add(f"| c={c} {st['log_level']}: latency p99 (ms) | {fmt(st['p99_us'], 1e-3, 2)} | "
            + (f"nginx same POST {fmt(fl['p99_us'], 1e-3, 3)} | "
               f"x{st['p99_us']['median'] / fl['p99_us']['median']:.0f} |" if fl else "| |"))
        add(f"| c={c} {st['log_level']}: events/s | {fmt(st['events_per_s'], 1, 0)} | "
            + (f"nginx same POST {fmt(fl['requests_per_s'], 1, 0)} req/s | "
               f"x{st['events_per_s']['median'] / fl['requests_per_s']['median']:.3f} |"
               if fl else "| |"))
    st64 = r["steady"]["c64"]
    add(f"| c=64: peak RSS VmHWM (MB) | {fmt(st64['VmHWM'], 1 / 1024, 1)} | | |")
    g = r["growth"]
    add(f"| RSS at " + " / ".join(g["rss_kb"]) + " events, c=64 (MB) | " +
        " / ".join(f"{v / 1024:.1f}" for v in g["rss_kb"].values()) +
        f" (growth {g['growth_kb']:+d} kB" + (
            f"; {g['growth_after_caches_full_kb']:+d} kB after {g['after_caches_full_from']}, "
            "dedup sets full" if g["after_caches_full_from"] else "") + ") | | |")
    e = r["economy"]["per_1000_events"]
    add(f"| per 1,000 events (c={r['economy']['concurrency']}, {r['economy']['events']} events):"
        f" token / discovery / parent-run lookups | {e['token_requests']:.2f} / "
        f"{e['discovery_requests']:.2f} / {e['parent_run_lookups']:.0f} | | |")
    add(f"| per 1,000 events: RunDetails / Run / metrics list requests | "
        f"{e['run_details_requests']:.0f} / {e['run_requests']:.0f} / "
        f"{e['metrics_requests']:.0f} | | |")
    for kind in ("tcp_connections", "tls_full_handshakes", "tls_resumed_handshakes"):
        add(f"| per 1,000 events: {kind.replace('_', ' ')} (entra / arm / aml / ingestion) | "
            + " / ".join(f"{e[kind][u]:.2f}" for u in nginx.UPSTREAMS) + " | | |")
    add(f"| per 1,000 events: ingestion POSTs; events per POST | {e['ingestion_posts']:.1f}; "
        f"{r['economy']['events_per_ingestion_post']:.1f} | | |")
    b = r["baselines"]
    add(f"| loopback floor (wrk, nginx TLS keep-alive, c=1): GET RunDetails p50 (ms) | | "
        f"{fmt(b['run_details_get_tls_c1']['p50_us'], 1e-3, 3)} | |")
    add(f"| loopback floor (wrk, nginx TLS keep-alive, c=1): POST track p50 (ms) | | "
        f"{fmt(b['track_post_tls_c1']['p50_us'], 1e-3, 3)} | |")
    cg = r.get("callgrind")
    if cg:
        add(f"| instructions per event (callgrind, server path, c={cg['concurrency']}, "
            f"{cg['events'][1]} - {cg['events'][0]} events) | {cg['ir_per_event']:,.0f} | | |")
    sp = r.get("startup_profile")
    if sp:
        add(f"| instructions exec -> ready (callgrind, start-up) | {sp['ir_total']:,} | | |")
    L.append("")
    L.append("| target | holds | measured |")
    L.append("|---|---|---|")
    for name, ok, measured in targets(r):
        L.append(f"| {name} | {'yes' if ok else 'NO'} | {measured} |")
    return "\n".join(L)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in
                Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")),
               "?")
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": os.uname().release,
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True,
                                    text=True).stderr.strip()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs, under 2 minutes")
    ap.add_argument("--skip-callgrind", action="store_true")
    a = ap.parse_args()
    q = a.quick
    runs = 3
    bench = Bench(q)
    t0 = time.monotonic()
    results = {"mode": "quick" if q else "default", "machine": machine(),
               "handler": str(HANDLER), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime())}
    try:
        bench.start_nginx()
        log("cold start")
        results["cold_start"] = bench.cold_start(5 if q else 9)
        log("steady state")
        sizes = {1: 100 if q else 250, 8: 1000 if q else 3000, 64: 1500 if q else 5000}
        results["steady"] = {f"c{c}": bench.steady(c, n, runs) for c, n in sizes.items()}
        results["steady"]["c8_info"] = bench.steady(8, sizes[8], 1 if q else runs, "info")
        log("upstream economy")
        results["economy"] = bench.economy(32, 2000 if q else 10000)
        log("memory growth")
        results["growth"] = bench.growth((2000, 6000, 10000) if q else
                                         (10000, 40000, 70000, 100000))
        log("baselines (wrk)")
        results["baselines"] = bench.baselines(1 if q else runs, 2 if q else 3,
                                               invocation_body())
        if not a.skip_callgrind:
            log("callgrind")
            results["callgrind"] = bench.callgrind(*((40, 120) if q else (100, 400)))
            results["startup_profile"] = bench.startup_profile()
    finally:
        for p in list(CHILDREN):
            Bench.stop(p, 30)
    results["duration_s"] = time.monotonic() - t0
    results["targets"] = [{"target": n, "holds": ok, "measured": m}
                          for n, ok, m in targets(results)]
    results["table"] = table(results)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    print(results["table"])
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} x {m['cpu']}, kernel {m['kernel']}; "
          f"run took {results['duration_s']:.0f} s; JSON: {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
