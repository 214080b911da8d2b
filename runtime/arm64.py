"""An artifact run in the aarch64 build of its own runtime, under qemu-user, inside an arm64
Debian root: the ARM kernels (XNNPACK's NEON paths, onnxruntime's ARM int8 kernels) that the
x86 tests never run.

The root is made once (`make arm64-root`: debootstrap, the locked aarch64 wheels, and the .pte
runner arm64_pte.cpp compiled against executorch's aarch64 libraries) and cached
outside the clone. Each use mounts /proc (with an ARM /proc/cpuinfo over the host's x86 one:
onnxruntime's cpuinfo library crashes on the latter under qemu) and /sys, starts
_arm64_serve.py there once per artifact, and unmounts again.

    with Arm64(Path("out/model.onnx"), x86_runner) as runner:
        runner.run(feeds)       # the arm64 outputs; runner.diffs: arm64 against x86, per call
"""

import io
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pocketfit.errors import EnvironmentLimit, UnsupportedCombination

ROOT = Path(os.environ.get("POCKETFIT_ARM64_ROOT", "/var/cache/pocketfit/arm64-root"))
PYTHON = "/opt/venv/bin/python"
PTE_RUNNER = "/opt/pocketfit/libpfpte.so"  # arm64_pte.cpp, compiled by build_root
SUFFIXES = (".pte", ".onnx", ".ort", ".tflite")
CPUINFO = Path(__file__).with_name("arm64-cpuinfo.txt")
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def _tool(name: str) -> str:
    """A system tool by path: chroot lives in /usr/sbin, which a user's PATH may not hold."""
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


def ready(root: Path = ROOT) -> str | None:
    """Why this machine cannot run arm64 artifacts now, or None when it can."""
    if os.geteuid() != 0:
        return "arm64 verification needs root (chroot and mounts)"
    if not (root / PYTHON.lstrip("/")).exists():  # first: make arm64-root installs qemu as well
        return f"no arm64 root at {root}: build it once with `make arm64-root` (debootstrap and the locked aarch64 wheels, about 3 minutes, 660 MB)"
    if not shutil.which("qemu-aarch64-static", path=os.environ.get("PATH", "") + ":/usr/bin"):
        return "no qemu-aarch64-static: apt-get install qemu-user-static (or make arm64-root)"
    return None


def register_binfmt() -> None:
    """Let the kernel hand aarch64 executables to qemu (a container may have no binfmt_misc mounted)."""
    if (BINFMT / "qemu-aarch64").exists():
        return
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True)
    conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
    if not conf.exists() or not (BINFMT / "register").exists():
        raise EnvironmentLimit("cannot register qemu for aarch64 executables (binfmt_misc): install qemu-user-static")
    (BINFMT / "register").write_text(conf.read_text())


class Arm64:
    """A runner with the x86 runner's inputs and outputs whose run() executes on arm64; each call
    also runs the x86 runner on the same feeds and records how far apart they are."""

    def __init__(self, artifact: Path, x86, cpu: str = "max", root: Path = ROOT):
        if artifact.suffix not in SUFFIXES:
            raise UnsupportedCombination(f"arm64 verification runs {', '.join(SUFFIXES)} files, not {artifact.suffix or artifact.name}")
        why = ready(root)
        if why:
            raise EnvironmentLimit(why)
        if artifact.suffix == ".pte" and not (root / PTE_RUNNER.lstrip("/")).exists():
            raise EnvironmentLimit(f"the arm64 root at {root} was built before .pte support: rebuild it with `make arm64-root`")
        register_binfmt()
        self.artifact, self.x86, self.cpu, self.root = artifact, x86, cpu, root
        self.inputs, self.outputs = x86.inputs, x86.outputs
        self.diffs: list[tuple[float, float]] = []  # (max |arm64 - x86|, cosine) per call
        self._mounts: list[Path] = []

    def __enter__(self):
        self._work = Path(tempfile.mkdtemp(prefix="verify-", dir=self.root / "tmp"))
        shutil.copy2(self.artifact, self._work / self.artifact.name)
        shutil.copy2(Path(__file__).with_name("_arm64_serve.py"), self._work / "serve.py")
        try:
            self._mount(["-t", "proc", "proc"], self.root / "proc")
            self._mount(["--bind", str(CPUINFO)], self.root / "proc" / "cpuinfo")
            self._mount(["--bind", "/sys"], self.root / "sys")
            inside = "/" + str(self._work.relative_to(self.root))
            self._server = subprocess.Popen(
                [_tool("chroot"), str(self.root), PYTHON, f"{inside}/serve.py", f"{inside}/{self.artifact.name}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin", "HOME": "/root", "QEMU_CPU": self.cpu})
            self.runtime_version = self._read().decode()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        server = getattr(self, "_server", None)
        if server is not None:
            server.stdin.close()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        for point in reversed(self._mounts):
            subprocess.run(["umount", str(point)], capture_output=True)
        self._mounts.clear()
        shutil.rmtree(self._work, ignore_errors=True)
        return False

    def _mount(self, args: list[str], point: Path) -> None:
        done = subprocess.run(["mount", *args, str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            raise EnvironmentLimit(f"cannot mount {point}: {done.stderr.strip()}")
        self._mounts.append(point)

    def _read(self) -> bytes:
        head = self._server.stdout.read(8)
        if len(head) < 8:
            err = self._server.stderr.read().decode(errors="replace").strip().splitlines()
            raise EnvironmentLimit(f"the arm64 runtime stopped under qemu ({self.cpu}): {err[-1] if err else 'no output'}")
        return self._server.stdout.read(struct.unpack(">Q", head)[0])

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        buffer = io.BytesIO()
        np.savez(buffer, **{s.name: feeds[s.name] for s in self.inputs})  # in order: a .pte takes its inputs by position
        payload = buffer.getvalue()
        self._server.stdin.write(struct.pack(">Q", len(payload)) + payload)
        self._server.stdin.flush()
        answer = np.load(io.BytesIO(self._read()))
        outputs = [answer[f"out{i}"] for i in range(len(answer.files))]
        for a, x in zip(outputs, self.x86.run(feeds)):
            a64, x64 = np.asarray(a, np.float64).ravel(), np.asarray(x, np.float64).ravel()
            norm = np.linalg.norm(a64) * np.linalg.norm(x64)
            self.diffs.append((float(np.abs(a64 - x64).max()), float(a64 @ x64 / norm) if norm else 1.0))
        return outputs


def verify(artifact: Path, cpu: str = "max", progress=None) -> dict:
    """Parity of the artifact on arm64 and on x86 against torch (the export's own fixed inputs and
    metrics), and of arm64 against x86 on every output, with the time each took."""
    import time

    from pocketfit.converter import backends, tasks
    from pocketfit.converter.models import load
    from pocketfit.manifest import read
    from pocketfit.progress import Silent

    progress = progress or Silent()
    artifact = Path(artifact)
    manifest = read(artifact.with_name("manifest.json"))
    if manifest.shrink:  # the manifest names the model before shrinking: parity against it would mislead
        raise UnsupportedCombination(f"{artifact} was shrunk ({', '.join(r['step'] for r in manifest.shrink)}): its torch "
                                     "reference cannot be rebuilt from the manifest, so arm64 verification does not take it yet")
    backend = backends.for_path(artifact)
    task = tasks.spec(tasks.Task(manifest.task))
    with progress.step(f"loading the torch reference ({manifest.source.model})"):
        model = load(manifest.source.model if manifest.source.model == "minilm" else manifest.source.path, tasks.Task(manifest.task))
        kv = (manifest.details or {}).get("kv_cache") or {}
        graph = task.graph(model, backend.CACHE, kv.get("max_context"))
    rows = {}
    with progress.step(f"running it on x86 in {backend.FORMAT.runtime}"):
        start = time.perf_counter()
        rows["x86_64"], count = task.evaluate(model, graph, lambda: backend.open(artifact))
        x86_seconds = time.perf_counter() - start
    with progress.step(f"running it on arm64 under qemu ({cpu}), {count} inputs"):
        start = time.perf_counter()
        with Arm64(artifact, backend.open(artifact), cpu) as runner:
            rows["arm64"], _ = task.evaluate(model, graph, lambda: runner)
        arm_seconds = time.perf_counter() - start
    worst = max(runner.diffs, key=lambda d: d[0])
    return {"artifact": str(artifact), "format": manifest.format, "quantization": manifest.quantization["scheme"],
            "task": manifest.task, "inputs": count, "qemu_cpu": cpu,
            "x86_runtime": backend.runtime_version().rsplit(" ", 1)[-1], "arm64_runtime": runner.runtime_version,
            "torch_parity": rows, "floors": dict(manifest.parity.floors),
            "arm64_vs_x86": {"max_abs": worst[0], "cosine_min": min(d[1] for d in runner.diffs)},
            "seconds": {"x86_64": round(x86_seconds, 2), "arm64": round(arm_seconds, 2)}}


def build_root(root: Path = ROOT, mirror: str = "http://deb.debian.org/debian") -> Path:
    """Make the arm64 root once (what `make arm64-root` runs): a minimal bookworm with Python 3.11
    by debootstrap; numpy, onnxruntime and ai-edge-litert at the lock's versions from their aarch64
    wheels; executorch's aarch64 wheel without its dependencies, for its C++ runtime libraries
    only, and arm64_pte.cpp compiled against them with Debian's aarch64 cross compiler. Built
    beside its final name and renamed, so a failed build leaves no root."""
    import sys

    if os.geteuid() != 0:
        raise EnvironmentLimit("building the arm64 root needs root (debootstrap, chroot)")
    for tool, package in (("qemu-aarch64-static", "qemu-user-static"), ("debootstrap", "debootstrap"),
                          ("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu")):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"})
    register_binfmt()
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_tool("debootstrap"), "--arch=arm64", "--variant=minbase", "--include=python3,python3-venv,python3-pip",
                    "bookworm", str(partial), mirror], check=True)
    lock = Path(__file__).resolve().parent.parent / "requirements" / "lock.txt"
    platforms = [a for p in ("manylinux_2_28_aarch64", "manylinux_2_27_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64")
                 for a in ("--platform", p)]
    download = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", "3.11", *platforms,
                "-c", str(lock), "-d", str(partial / "wheels")]
    subprocess.run([*download, "numpy", "onnxruntime", "ai-edge-litert"], check=True)
    # Its Python side needs torch, whose aarch64 wheel on PyPI is the CUDA build: only the libraries are used.
    subprocess.run([*download, "--no-deps", "executorch"], check=True)
    subprocess.run([_tool("chroot"), str(partial), "/bin/sh", "-c", "python3 -m venv /opt/venv && "
                    "/opt/venv/bin/pip install -q --no-index --find-links /wheels numpy onnxruntime ai-edge-litert && "
                    "/opt/venv/bin/pip install -q --no-index --no-deps --find-links /wheels executorch"],
                   check=True, env={"PATH": "/usr/bin:/bin", "HOME": "/root"})
    compile_pte_runner(partial)
    shutil.rmtree(partial / "wheels")
    (partial / "tmp").mkdir(exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return root


def compile_pte_runner(root: Path) -> Path:
    """arm64_pte.cpp against the root's executorch, with the definitions its CMake config says a
    consumer must use, linking every kernel and backend library so their registrations run."""
    inside = "/opt/venv/lib/python3.11/site-packages/executorch"
    package = root / inside.lstrip("/")
    out = root / PTE_RUNNER.lstrip("/")
    out.parent.mkdir(parents=True, exist_ok=True)
    libraries = ["executorch", "executorch_kernels_optimized", "executorch_kernels_quantized", "executorch_backend_xnnpack",
                 "executorch_threadpool"]
    subprocess.run([_tool("aarch64-linux-gnu-g++"), "-std=c++17", "-O2", "-shared", "-fPIC", "-Wno-deprecated-declarations",
                    "-DC10_USING_CUSTOM_GENERATED_MACROS", "-DET_EVENT_TRACER_ENABLED",
                    f"-I{package}/include", f"-I{package}/include/executorch/runtime/core/portable_type/c10",
                    str(Path(__file__).with_name("arm64_pte.cpp")), "-o", str(out), f"-L{package}/lib", "-Wl,--no-as-needed",
                    *(f"-l{name}" for name in libraries), f"-Wl,-rpath,{inside}/lib"], check=True)
    return out
