#!/usr/bin/env python3
"""Proves that the package scripts/package builds runs on a bare Debian bookworm.

The Functions base image holds none of our libraries: what users publish must
bring them. This test builds the package (or takes PACKAGE_ZIP), creates a minimal
Debian bookworm root the way the issue describes it (`debootstrap
--variant=minbase --include=ca-certificates,libssl3`), unpacks the zip there
(honouring the unix modes the zip carries, as Linux deployments do) and runs the
handler in it with chroot, the way the Functions host would:

  - the zip: the executable host.json names is in it with mode 0755, the function
    folder with its eventGridTrigger binding, and nothing else but host.json and
    .funcignore: no lib/ folder, and no RPATH/RUNPATH in the executable (every
    library but glibc is linked statically);
  - `ldd` inside the root finds every library, and each is glibc's (libc, libm,
    libpthread, the loader, the vDSO): no OpenSSL, no libcurl, nothing else;
  - `handler --version` runs inside the root and matches the zip's version;
  - started as the host starts it (FUNCTIONS_CUSTOMHANDLER_PORT, FUNCTIONS_APP_ROOT_PATH
    = /home/site/wwwroot, mounted read-only, as with run-from-package), it answers
    GET / with 200 and one AML event invocation POSTed to /function_app with 200
    and {"Outputs":{},"Logs":[...],"ReturnValue":null}, writes the record line
    {"name":"AmlRunStatusChanged","record":{...}} on stdout, and exits 0 on SIGTERM;
  - the Core Tools rule: in the zip, only the file host.json names
    (customHandler.description.defaultExecutablePath) is executable; and the app
    zipped the way Core Tools zips it (`func azure functionapp publish`, `func
    pack`: ZipHelper.CreateDotNetZip in Azure/azure-functions-core-tools, files
    only, that file 0777 and every other file 0666) runs from that zip in the root
    just the same.

The root is cached in ${PACKAGE_ROOTFS_CACHE:-/var/cache/aml-handler-rootfs} and
never changed by a run: the app folder and /proc are mounted into it inside a
private mount namespace (unshare), so the mounts vanish with the handler, even if
the test is killed. (The root keeps libssl3, which every Functions image has,
so a handler that still needed OpenSSL would be caught by the ldd check and
not merely fail to start.)

Exit status: 0 all passed, 1 a check failed, 77 skipped (not root, no debootstrap
and it cannot be installed, or no private mount namespace: run the container
privileged). The last line is "N passed, N failed".

Environment: PACKAGE_ZIP (test this zip instead of building one),
PACKAGE_ROOTFS_CACHE, PACKAGE_DEBIAN_MIRROR (default http://deb.debian.org/debian),
PACKAGE_DEBOOTSTRAP_TIMEOUT (seconds, default 1200).
"""

import fcntl
import fnmatch
import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

SKIP = 77
REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
INCLUDE = "ca-certificates,libssl3"
MIRROR = os.environ.get("PACKAGE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("PACKAGE_ROOTFS_CACHE", "/var/cache/aml-handler-rootfs"))
DEBOOTSTRAP_TIMEOUT = int(os.environ.get("PACKAGE_DEBOOTSTRAP_TIMEOUT", "1200"))
APP_ROOT = "/home/site/wwwroot"  # where the Functions host keeps the app
FUNCTION = "function_app"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READY_SECONDS = 15
STOP_SECONDS = 40  # the handler drains in-flight invocations for up to 25 s
# The only libraries the executable may resolve at run time: glibc's.
GLIBC_LIBS = ("linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6",
              "libpthread.so.0")
# Everything the app folder may hold: the host files and every function folder's
# function.json (the event function and the workspace watch).
APP_FILES = {"host.json", ".funcignore"} | {
    str(p.relative_to(REPO)) for p in REPO.glob("*/function.json")}

EVENT = {
    "id": "4c0d1e5a-7a7e-4d1f-9b7d-2f3c6a1b0c01",
    "topic": "/subscriptions/6f3a1b2c-0000-4000-8000-000000000001/resourceGroups/ml-rg"
             "/providers/Microsoft.MachineLearningServices/workspaces/ml-ws",
    "subject": "experiments/82c99df0-345e-47f5-9f37-17182d398f02/runs/"
               "3e387505-7222-4a23-a1ff-15572a7db2c7",
    "eventType": "Microsoft.MachineLearningServices.RunStatusChanged",
    "eventTime": "2024-05-14T09:31:12.5000000Z",
    "data": {
        "experimentId": "82c99df0-345e-47f5-9f37-17182d398f02",
        "experimentName": "sample-pipeline",
        "runId": "3e387505-7222-4a23-a1ff-15572a7db2c7",
        "runType": "azureml.StepRun",
        "runTags": {
            "azureml.pipelinerunid": "da7e4950-79aa-4363-9d34-1c71e5fbd95f",
            "azureml.nodeid": "6b1f0a2c",
        },
        "runProperties": {
            "azureml.runsource": "azureml.StepRun",
            "azureml.nodeid": "6b1f0a2c",
            "ContentSnapshotId": "0e7c2a54-1d5e-4b8a-9a3f-3c2b1d0e9f11",
            "StepType": "PythonScriptStep",
            "_azureml.ComputeTargetType": "amlcompute",
        },
        "runStatus": "Completed",
    },
    "dataVersion": "2",
    "metadataVersion": "1",
}


class Interrupted(BaseException):
    """A signal asked us to stop; finally blocks clean up on the way out."""


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   - {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL - {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok


def log(message):
    print(f"# {message}", flush=True)


def skip(reason):
    print(f"SKIP: {reason}", flush=True)
    print("0 passed, 0 failed, 1 skipped", flush=True)
    sys.exit(SKIP)


def is_glibc_lib(soname):
    return Path(soname).name in GLIBC_LIBS


# --- the minimal root --------------------------------------------------------


def mounts_under(path):
    """Mount points at or below path in this mount namespace, deepest first."""
    prefix = str(path).rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == str(path) or point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def remove_tree(path):
    """rm -rf that never descends into something mounted below path."""
    if not os.path.lexists(path):
        return
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def debootstrap_command(target):
    return ["debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE,
            str(target), MIRROR]


def ensure_rootfs(work):
    """The cached root, created on first use; returns (path, seconds, created)."""
    root = CACHE / f"{SUITE}-minbase"
    stamp = root / ".aml-handler-rootfs"
    wanted = " ".join(debootstrap_command("ROOT")[:-1]) + "\n"
    CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one creator; the others wait, then reuse
        if stamp.is_file() and stamp.read_text() == wanted:
            return root, time.monotonic() - started, False
        partial = CACHE / f"{SUITE}-minbase.partial"
        remove_tree(partial)
        command = debootstrap_command(partial)
        log(f"creating the root (first run, a few minutes): {' '.join(command)}")
        log_path = Path(work) / "debootstrap.log"
        with open(log_path, "w") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                proc.wait(timeout=DEBOOTSTRAP_TIMEOUT)
            except BaseException:
                # Our own child: let debootstrap's trap unmount what it mounted.
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                remove_tree(partial)
                raise
        if proc.returncode != 0:
            tail = log_path.read_text(errors="replace").splitlines()[-15:]
            remove_tree(partial)
            raise RuntimeError(f"debootstrap exited {proc.returncode}:\n  " +
                               "\n  ".join(tail))
        (partial / APP_ROOT.lstrip("/")).mkdir(parents=True, exist_ok=True)
        (partial / stamp.name).write_text(wanted)
        remove_tree(root)
        partial.rename(root)
        return root, time.monotonic() - started, True


# --- the package ---------------------------------------------------------------


def build_package(work):
    zip_env = os.environ.get("PACKAGE_ZIP")
    if zip_env:
        return Path(zip_env).resolve()
    out = Path(work) / "dist"
    started = time.monotonic()
    proc = subprocess.run([str(REPO / "scripts" / "package"), "--out", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    for line in proc.stdout.splitlines():
        log(line)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/package exited {proc.returncode}")
    zips = sorted(out.glob("aml-event-handler-*.zip"))
    if len(zips) != 1:
        raise RuntimeError(f"expected one zip in {out}, found {zips}")
    log(f"scripts/package took {time.monotonic() - started:.1f} s")
    return zips[0]


def unpack(zip_path, dest, results):
    """Extracts like a Linux deployment: unix modes from external_attr kept."""
    modes = {}
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            name = info.filename
            if name.startswith("/") or ".." in Path(name).parts:
                results.check("zip entries stay inside the app", False, name)
                return modes
            target = dest / name
            mode = (info.external_attr >> 16) if info.create_system == 3 else 0
            modes[name.rstrip("/")] = mode
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            if stat.S_IMODE(mode):
                os.chmod(target, stat.S_IMODE(mode))
    return modes


def check_package(app, modes, zip_path, results):
    """Static checks; returns the executable's path relative to the app root."""
    host = json.loads((app / "host.json").read_text())
    exe = host.get("customHandler", {}).get("description", {}).get(
        "defaultExecutablePath", "")
    mode = modes.get(exe, 0)
    results.check(f"zip: host.json names '{exe}', a regular file with mode 0755",
                  bool(exe) and stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o755,
                  f"mode {oct(mode)}")
    try:
        bindings = json.loads((app / FUNCTION / "function.json").read_text())["bindings"]
    except (OSError, ValueError, KeyError) as e:
        bindings = []
        log(f"{FUNCTION}/function.json: {e}")
    results.check(f"zip: {FUNCTION}/function.json has an eventGridTrigger binding",
                  any(b.get("type") == "eventGridTrigger" for b in bindings))
    files = {str(p.relative_to(app)) for p in app.rglob("*") if not p.is_dir()}
    results.check("zip: one executable plus the function files, no lib/",
                  files == APP_FILES | {exe} and not (app / "lib").exists(),
                  f"found {sorted(files)}")
    results.check("zip: .funcignore present", (app / ".funcignore").is_file())
    dyn = subprocess.run(["readelf", "-d", str(app / exe)], stdout=subprocess.PIPE,
                         text=True).stdout
    paths = [line.split("[", 1)[1].rstrip("]") for line in dyn.splitlines()
             if "(RPATH)" in line or "(RUNPATH)" in line]
    results.check("executable: no RPATH/RUNPATH", not paths, f"found {paths}")
    log(f"zip {zip_path.name}: {zip_path.stat().st_size} bytes")
    return exe


def check_only_executable_is_executable(modes, exe, results):
    """The Core Tools rule: only defaultExecutablePath carries an executable bit."""
    others = sorted(name for name, mode in modes.items()
                    if stat.S_ISREG(mode) and mode & 0o111 and name != exe)
    results.check(f"zip: only '{exe}' is executable, every other file is not",
                  not others, f"also executable: {others}")


def core_tools_zip(app, exe, target):
    """Zips app as Core Tools does (ZipHelper.CreateDotNetZip): every file that
    .funcignore keeps, no directory entries, unix attributes with the file named
    by defaultExecutablePath 0100777 and every other file 0100666."""
    ignored = [line.strip() for line in (app / ".funcignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")] if (app / ".funcignore").is_file() else []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in app.rglob("*") if p.is_file()):
            name = path.relative_to(app).as_posix()
            if any(fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(path.name, pattern)
                   for pattern in ignored):
                continue
            info = zipfile.ZipInfo(name, time.gmtime(path.stat().st_mtime)[:6])
            info.create_system = 3
            info.external_attr = (0o100777 if name == exe else 0o100666) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, path.read_bytes())
    return target


# --- running inside the root -------------------------------------------------


def can_mount_privately():
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs none "$1" && umount "$1"', "sh", tempfile.gettempdir()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return probe.returncode == 0


class Jail:
    """Runs commands inside root, with /proc and the app (read-only, at APP_ROOT)
    mounted in a private mount namespace that ends with the command."""

    def __init__(self, root, app):
        self.root = root
        self.app = app
        self.app_root = APP_ROOT
        (root / APP_ROOT.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def command(self, argv, cwd=None):
        inner = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd or "/"] + argv
        # unshare without --fork execs: the pid we get is the handler's.
        script = ('set -e; root=$1; app=$2; shift 2; '
                  'mount -t proc proc "$root/proc"; '
                  'mount --bind "$app" "$root' + APP_ROOT + '"; '
                  'mount -o remount,bind,ro "$root' + APP_ROOT + '"; '
                  'exec chroot "$root" "$@"')
        return (["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                 "sh", str(self.root), str(self.app)] + inner)

    def run(self, argv, env=None, timeout=60):
        return subprocess.run(self.command(argv), env=env or {"PATH": PATH},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)



def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()
    finally:
        conn.close()


def check_ldd(jail, exe, results):
    proc = jail.run(["/usr/bin/ldd", f"{jail.app_root}/{exe}"])
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    missing = [line for line in lines if "not found" in line]
    results.check("ldd in the root: every library found",
                  proc.returncode == 0 and not missing,
                  "; ".join(missing) or proc.stdout.strip())
    sonames = [line.split()[0] for line in lines]
    others = [s for s in sonames if not is_glibc_lib(s)]
    results.check("ldd in the root: only glibc's libraries",
                  bool(sonames) and not others, "; ".join(others))
    log(f"from the image: {' '.join(sorted(Path(s).name for s in sonames))}")


def check_version(jail, exe, zip_path, results):
    proc = jail.run([f"{jail.app_root}/{exe}", "--version"])
    version = zip_path.stem.rsplit("-", 1)[-1]
    results.check(f"handler --version in the root says {version}",
                  proc.returncode == 0 and version in proc.stdout, proc.stdout.strip())


def check_serving(jail, exe, work, results):
    port = free_port()
    env = {
        "PATH": PATH,
        "HOME": "/home",
        "FUNCTIONS_WORKER_RUNTIME": "custom",
        "FUNCTIONS_CUSTOMHANDLER_PORT": str(port),
        "FUNCTIONS_HTTPWORKER_PORT": str(port),
        "FUNCTIONS_CUSTOMHANDLER_WORKER_ID": str(uuid.uuid4()),
        "FUNCTIONS_APP_ROOT_PATH": jail.app_root,
        "HANDLER_LOG_LEVEL": "info",
    }
    out_path, err_path = Path(work) / "handler.out", Path(work) / "handler.err"
    argv = [f"{jail.app_root}/{exe}"]  # the host appends no flags
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(jail.command(argv, cwd=jail.app_root), env=env,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        status = None
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, _, _ = request(port, "GET", "/", timeout=2)
                break
            except OSError:
                time.sleep(0.025)  # the host polls every 25 ms
        results.check("GET / answers 200", status == 200,
                      f"status {status}, exit {proc.poll()}")

        body = json.dumps({
            "Data": {"event": EVENT},
            "Metadata": {"data": EVENT["data"], "sys": {
                "MethodName": FUNCTION,
                "UtcNow": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "RandGuid": str(uuid.uuid4())}},
        }).encode()
        headers = {"Content-Type": "application/json",
                   "X-Azure-Functions-InvocationId": str(uuid.uuid4()),
                   "X-Azure-Functions-HostVersion": "4.1036.1.23224",
                   "User-Agent": "Azure-Functions-Host/4.1036.1.23224"}
        answer, ctype, raw = None, "", b""
        if status == 200:
            try:
                answer, ctype, raw = request(port, "POST", f"/{FUNCTION}", body, headers,
                                             timeout=30)
            except OSError as e:
                raw = str(e).encode()
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        shaped = (isinstance(doc, dict) and doc.get("Outputs") == {}
                  and isinstance(doc.get("Logs"), list)
                  and all(isinstance(x, str) for x in doc["Logs"])
                  and "ReturnValue" in doc and doc["ReturnValue"] is None)
        results.check(f"POST /{FUNCTION} answers 200 with "
                      '{"Outputs":{},"Logs":[...],"ReturnValue":null}',
                      answer == 200 and shaped and ctype.startswith("application/json"),
                      f"status {answer}, {ctype!r}, {raw[:300]!r}")
    finally:
        code = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            log(f"the handler had already exited with {proc.returncode}")
    results.check("SIGTERM stops it with exit status 0", code == 0, f"exit {code}")

    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    records = []
    for line in stdout.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("record"), dict):
            records.append(doc)
    wanted = [r for r in records if r.get("name") == "AmlRunStatusChanged"
              and r["record"].get("run_id") == EVENT["data"]["runId"]]
    results.check('stdout has the record line {"name":"AmlRunStatusChanged",'
                  '"record":{...}} of the event', len(wanted) == 1,
                  f"{len(records)} record lines")
    if wanted:
        log("record: " + json.dumps(wanted[0], separators=(",", ":"))[:400])
    if results.failed:
        log("handler stdout:\n" + stdout[-2000:])
        log("handler stderr:\n" + stderr[-2000:])


def main():
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    if os.geteuid() != 0:
        skip("needs root (debootstrap and chroot); run it as root or with sudo")
    if not shutil.which("debootstrap") and shutil.which("apt-get"):
        log("installing debootstrap")
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "install", "-y", "-qq", "debootstrap"],
                        ["apt-get", "update", "-qq"],
                        ["apt-get", "install", "-y", "-qq", "debootstrap"]):
            if shutil.which("debootstrap"):
                break
            subprocess.run(command, env=apt_env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False, timeout=600)
    for tool in ("debootstrap", "chroot", "unshare", "readelf"):
        if not shutil.which(tool):
            skip(f"{tool} is not available (apt-get install debootstrap binutils)")
    if not can_mount_privately():
        skip("cannot mount in a private mount namespace (unshare --mount): the test "
             "mounts /proc and the app into the root; needs CAP_SYS_ADMIN")

    results = Results()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="aml-package-test.") as work:
            try:
                zip_path = build_package(work)
                root, seconds, created = ensure_rootfs(work)
            except RuntimeError as e:
                results.check("package built and root created", False, str(e))
            else:
                log(f"root {root}: " + (f"created by debootstrap in {seconds:.0f} s"
                                        if created else f"cached, reused in {seconds:.2f} s"))
                app = Path(work) / "app"
                app.mkdir()
                modes = unpack(zip_path, app, results)
                exe = check_package(app, modes, zip_path, results)
                check_only_executable_is_executable(modes, exe, results)
                jail = Jail(root, app)
                check_ldd(jail, exe, results)
                check_version(jail, exe, zip_path, results)
                check_serving(jail, exe, work, results)
                log("the same app zipped as Core Tools zips it (exe 0777, the rest 0666)")
                ct_zip = core_tools_zip(app, exe, Path(work) / "core-tools.zip")
                ct_app = Path(work) / "core-tools-app"
                ct_app.mkdir()
                ct_modes = unpack(ct_zip, ct_app, results)
                results.check("core tools zip: the executable 0777, every other file 0666",
                              all(stat.S_IMODE(m) == (0o777 if n == exe else 0o666)
                                  for n, m in ct_modes.items()), f"{ct_modes}")
                ct_jail = Jail(root, ct_app)
                check_version(ct_jail, exe, zip_path, results)
                check_serving(ct_jail, exe, work, results)
    except Interrupted as e:
        results.check("run to the end", False, f"interrupted by {e}")
    except Exception as e:  # a malformed package must fail the test, not crash it
        results.check("run to the end", False, f"{type(e).__name__}: {e}")
    log(f"took {time.monotonic() - started:.1f} s")
    print(f"{results.passed} passed, {results.failed} failed", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
