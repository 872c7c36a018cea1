"""The nginx stand-ins of the benchmark: a throwaway CA and server certificate
(openssl CLI), and an nginx.conf serving canned Entra ID, ARM, AML discovery,
run-history, metrics and App Insights answers over TLS on loopback.

Each upstream listens on its own port (so per-upstream TCP connections and TLS
handshakes can be told apart in the access log); every port serves every
location. The access log line is
    port connection ssl_session_reused method status request_length uri
written unbuffered, so the orchestrator can cut it per phase by byte offset.
Two more servers carry no log: `floor_tls` (the same locations, for wrk) and
`floor_http` (plain HTTP POST /function_app answering the handler's answer
shape, the floor per invocation).

Run ids are parsed by location regexes (see bench/loadgen.c): the step's
RunDetails and Run carry the id they were asked for, its pipeline as parent,
status Completed (…-4000-…) or Failed (…-4f00-…), a start time set when the
config was written (minutes ago) and `$time_iso8601` as end time.
"""

import datetime
import os
import socket
import subprocess
from pathlib import Path

UPSTREAMS = ("entra", "arm", "aml", "ingestion")
TENANT = "72f988bf-0000-4000-8000-00000000aaaa"
IKEY = "1b2c3d4e-0000-4000-8000-00000000beef"


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def make_certs(directory):
    """(ca.pem, server.pem, server.key) under directory, made once."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = d / "ca.pem", d / "ca.key"
    crt, key, csr, ext = d / "server.pem", d / "server.key", d / "server.csr", d / "ext.cnf"
    san = "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\n"
    if crt.exists() and ca.exists() and ext.exists() and ext.read_text().startswith(san):
        return ca, crt, key
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca), "-days", "2", "-subj", "/CN=handler bench CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
        str(csr), "-subj", "/CN=127.0.0.1")
    # DNS:127.0.0.1 too: mbedTLS 2.28 checks a host only against dNSName entries.
    ext.write_text(san + "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))
    return ca, crt, key


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"


def _log_files(run):
    sas = ("?sv=2019-07-07&sr=b&sig=" + "A" * 43 + "%3D&skoid=" + "0" * 36 +
           "&sktid=" + TENANT + "&skt=2024-05-14T09%3A20%3A00Z&ske=2024-05-15T09%3A30%3A00Z"
           "&sks=b&skv=2019-07-07&st=2024-05-14T09%3A20%3A00Z&se=2024-05-14T17%3A30%3A00Z&sp=r")
    base = "https://mlws0123456789.blob.core.windows.net/azureml/ExperimentRun/dcid." + run
    names = ("user_logs/std_log.txt", "system_logs/lifecycler/execution-wrapper.log",
             "system_logs/lifecycler/lifecycler.log", "system_logs/metrics_capability/"
             "metrics-capability.log")
    return "{" + ",".join(f'"{n}":"{base}/{n}{sas}"' for n in names) + "}"


def _step_doc(status, run_doc):
    run = "$p1-$p2-" + ("4000" if status == "Completed" else "4f00") + "-8000-$p5"
    parent = "$p1-0000-4000-8000-$p5"
    now = datetime.datetime.now(datetime.timezone.utc)
    created, start = _iso(now - datetime.timedelta(minutes=20)), _iso(
        now - datetime.timedelta(minutes=19))
    error = ('null' if status == "Completed" else
             '{"error":{"code":"UserError","message":"Execution failed. User process '
             '\\u0027python\\u0027 exited with status code 1. Please check log file '
             '\\u0027user_logs/std_log.txt\\u0027 for error details.","details":[],'
             '"innerError":{"code":"ScriptExecutionException"}},"time":"' + start + '",'
             '"componentName":"CommonRuntime"}')
    doc = (
        '{"runId":"' + run + '","runUuid":"c8e0f6a4-2b7d-4f59-8a3e-9d1c6b5e4f31",'
        '"parentRunUuid":"c8e0f6a4-2b7d-4f59-8a3e-9d1c6b5e4f30","parentRunId":"' + parent +
        '","rootRunId":"' + parent + '","target":"cpu-cluster","status":"' + status + '",'
        '"' + ("createdUtc" if run_doc else "createdTimeUtc") + '":"' + created + '",'
        '"startTimeUtc":"' + start + '",'
        '"endTimeUtc":"$time_iso8601","error":' + error + ',"warnings":[],'
        '"tags":{"azureml.pipelinerunid":"' + parent + '","azureml.nodeid":"9e3779b1",'
        '"azureml.pipeline":"' + parent + '","azureml.pipelineComponent":"masterescloud"},'
        '"properties":{"azureml.nodeid":"9e3779b1","azureml.moduleid":'
        '"82f7c88c-3850-4261-941a-3f4bd0538e01","azureml.moduleName":"train",'
        '"ContentSnapshotId":"807a507e-b727-41de-a146-e2632d638d29","StepType":'
        '"PythonScriptStep","_azureml.ComputeTargetType":"amlcompute","azureml.runsource":'
        '"azureml.StepRun","azureml.pipelinerunid":"' + parent + '","ProcessInfoFile":'
        '"azureml-logs/process_info.json","ProcessStatusFile":"azureml-logs/process_status.json"},'
        '"parameters":{},"runDefinition":{"script":"train.py","command":"","arguments":'
        '["--epochs","10","--lr","0.01"],"target":"cpu-cluster","framework":"Python",'
        '"communicator":"None","nodeCount":1,"environment":{"name":"bench-env","version":"1",'
        '"python":{"userManagedDependencies":false},"docker":{"baseImage":'
        '"mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:20240418.v1","enabled":false}}},'
        + ('' if run_doc else '"logFiles":' + _log_files(run) + ',') +
        '"runTypeV2":{"orchestrator":"Execution","traits":["azureml.StepRun"],'
        '"computeType":"AmlCompute"},"computeDuration":"00:05:12.1234567",'
        '"duration":"00:05:12.1234567","createdBy":{"userObjectId":'
        '"5b9e3c71-1f2a-4c8d-9e0b-7a6d5c4b3a21","userName":"Dana Scientist","upn":'
        '"dana@contoso.example"}')
    if run_doc:
        doc += (',"experimentId":'
                '"82c99df0-345e-47f5-9f37-17182d398f02","runType":"azureml.StepRun",'
                '"displayName":"train-$p2","name":"' + run + '","scriptName":"train.py",'
                '"compute":{"target":"cpu-cluster","targetType":"AmlCompute","vmSize":'
                '"STANDARD_DS3_V2","instanceCount":1}')
    return doc + "}"


def _parent_doc():
    now = datetime.datetime.now(datetime.timezone.utc)
    return ('{"runId":"$p1-0000-4000-8000-$p5","parentRunId":null,"status":"Running",'
            '"runType":"azureml.PipelineRun","displayName":"bench-pipeline",'
            '"experimentId":"82c99df0-345e-47f5-9f37-17182d398f02","target":"cpu-cluster",'
            '"createdUtc":"' + _iso(now - datetime.timedelta(minutes=21)) + '",'
            '"startTimeUtc":"' + _iso(now - datetime.timedelta(minutes=20)) + '",'
            '"compute":{"target":"cpu-cluster","targetType":"AmlCompute"},'
            '"properties":{"azureml.runsource":"azureml.PipelineRun","runSource":"SDK",'
            '"_azureml.ComputeTargetType":"amlcompute"},"tags":{}}')


_CHUNK = 3000  # nginx refuses a single config token longer than its 4 kB buffer


def _ret(body):
    """Directives answering 200 with `body` (variables interpolated); long bodies
    are assembled from `set` chunks."""
    assert "'" not in body
    if len(body) <= _CHUNK:
        return f"default_type application/json; return 200 '{body}';"
    names = []
    # never cut inside a variable name ($time_iso8601 is the longest, 13 chars)
    chunks, rest = [], body
    while rest:
        cut = min(_CHUNK, len(rest))
        while cut < len(rest) and "$" in rest[max(0, cut - 13):cut]:
            cut -= 1
        chunks.append(rest[:cut])
        rest = rest[cut:]
    lines = ["default_type application/json;"]
    for i, c in enumerate(chunks):
        lines.append(f"set $b{i} '{c}';")
        names.append(f"$b{i}")
    lines.append(f"return 200 \"{''.join(names)}\";")
    return "\n".join(lines)


def locations(ports):
    step = r"/runs/(?<p1>[0-9a-f]{8})-(?<p2>[0-9a-f]{4})-"
    tail = r"-8000-(?<p5>[0-9a-f]{12})"
    token = ('{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,'
             '"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.' + "e" * 1200 + '.' +
             "s" * 342 + '"}')
    ws = ('{"id":"/subscriptions/6f3a1b2c-0000-4000-8000-000000000001/resourceGroups/ml-rg/'
          'providers/Microsoft.MachineLearningServices/workspaces/ml-ws","name":"ml-ws",'
          '"type":"Microsoft.MachineLearningServices/workspaces","location":"eastus",'
          '"properties":{"workspaceId":"0c2f5a9e-7d41-4b8e-9a63-2e5d1f7c8b90",'
          '"discoveryUrl":"https://127.0.0.1:%d/discovery","provisioningState":"Succeeded"}}'
          % ports["aml"])
    disc = ('{"api":"https://127.0.0.1:%d","catalog":"https://127.0.0.1:%d",'
            '"experimentation":"https://127.0.0.1:%d","history":"https://127.0.0.1:%d"}'
            % ((ports["aml"],) * 4))
    return "\n".join([
        "location ~ \"^/[^/]+/oauth2/v2.0/token$\" { " + _ret(token) + " }",
        "location ~ \"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
        "Microsoft.MachineLearningServices/workspaces/[^/]+$\" { " + _ret(ws) + " }",
        "location = /discovery { " + _ret(disc) + " }",
        "location ~ \"/metric/v2.0/.*/runs/[^/]+/list$\" { " +
        _ret('{"value":[],"continuationToken":null,"nextLink":null}') + " }",
        "location ~ \"/runs/(?<p1>[0-9a-f]{8})-0000-4000" + tail + "$\" { " + _ret(_parent_doc()) +
        " }",
        "location ~ \"" + step + "4000" + tail + "/details$\" { " +
        _ret(_step_doc("Completed", False)) + " }",
        "location ~ \"" + step + "4f00" + tail + "/details$\" { " +
        _ret(_step_doc("Failed", False)) + " }",
        "location ~ \"" + step + "4000" + tail + "$\" { " + _ret(_step_doc("Completed", True)) +
        " }",
        "location ~ \"" + step + "4f00" + tail + "$\" { " + _ret(_step_doc("Failed", True)) + " }",
        # 200 means every item was accepted; the exporter reads per-item errors only
        # from 206/400 (handler/export/appinsights.c), as the official SDKs do.
        "location = /v2.1/track { " +
        _ret('{"itemsReceived":1,"itemsAccepted":1,"errors":[],"appId":null}') + " }",
    ])


def write_conf(directory, ports, certs):
    """nginx.conf for `ports` = {entra, arm, aml, ingestion, floor_tls, floor_http}."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca, crt, key = certs
    locs = locations(ports)
    user = "user root root;" if os.geteuid() == 0 else ""
    tls = (f"ssl_certificate {crt}; ssl_certificate_key {key}; "
           "ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:S:4m; "
           "ssl_session_tickets on; ssl_session_timeout 1h;")
    servers = []
    for name in UPSTREAMS:
        servers.append(f"server {{ listen 127.0.0.1:{ports[name]} ssl; {tls}\n"
                       f"access_log {d}/access.log bench;\n{locs}\n}}")
    servers.append(f"server {{ listen 127.0.0.1:{ports['floor_tls']} ssl; {tls}\n"
                   f"access_log off;\n{locs}\n}}")
    servers.append(f"server {{ listen 127.0.0.1:{ports['floor_http']}; access_log off;\n"
                   "location / { " + _ret('{"Outputs":{},"Logs":[],"ReturnValue":null}') +
                   " }\n}")
    conf = f"""{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  log_format bench '$server_port $connection $ssl_session_reused $request_method $status $request_length $uri';
  keepalive_requests 10000000; keepalive_timeout 600s;
  client_max_body_size 64m; client_body_buffer_size 1m;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  {chr(10).join(servers)}
}}
"""
    (d / "tmp").mkdir(exist_ok=True)
    path = d / "nginx.conf"
    path.write_text(conf)
    return path


def parse_log(text, ports):
    """Per upstream: requests, connections (distinct $connection), TLS handshakes
    (full / resumed), and requests per path kind."""
    by_port = {str(p): n for n, p in ports.items() if n in UPSTREAMS}
    out = {n: {"requests": 0, "conns": {}, "kinds": {}} for n in UPSTREAMS}
    for line in text.splitlines():
        f = line.split(" ")
        if len(f) < 7 or f[0] not in by_port:
            continue
        u = out[by_port[f[0]]]
        u["requests"] += 1
        if f[1] not in u["conns"]:
            u["conns"][f[1]] = f[2] == "r"
        kind = classify(f[3], f[6])
        u["kinds"][kind] = u["kinds"].get(kind, 0) + 1
        if f[4] != "200":
            u["kinds"]["non200"] = u["kinds"].get("non200", 0) + 1
    result = {}
    for n, u in out.items():
        resumed = sum(1 for r in u["conns"].values() if r)
        result[n] = {"requests": u["requests"], "connections": len(u["conns"]),
                     "tls_full": len(u["conns"]) - resumed, "tls_resumed": resumed,
                     "kinds": u["kinds"]}
    return result


def classify(method, uri):
    if uri.endswith("/oauth2/v2.0/token"):
        return "token"
    if "/workspaces/" in uri and uri.count("/") == 8 or uri == "/discovery":
        return "discovery"
    if uri.endswith("/details"):
        return "details"
    if uri.endswith("/list"):
        return "metrics"
    if uri == "/v2.1/track":
        return "track"
    if "-0000-4000-8000-" in uri.rsplit("/", 1)[-1]:
        return "parent"
    if "/runs/" in uri:
        return "run"
    return "other"
