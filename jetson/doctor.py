"""``nvila-edge doctor``: one table of checks, each with the exact fix when it fails.

Facts are gathered once (``jetson/host_facts.py``), then every check is a pure function of those facts and the
target, so the checks are tested with fake ``/proc`` / ``/etc`` / ``/dev`` trees and hand-made facts. A check
that fails names the actions it blocks (build, demo, run); the exit code follows the action asked for.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass

from nvila_edge.engines.targets import GIB, TargetRecord
from nvila_edge.jetson.host_facts import HostFacts, ModuleProbe
from nvila_edge.runtime.backends.cuda_bindings import BINDINGS as CUDA_BINDINGS
from nvila_edge.runtime.backends.trt_api import INSTALL_HINTS as TRT_INSTALL_HINTS

ACTIONS = ("build", "demo", "run")
# TensorRT keeps the ONNX weights, its network copy and the tactic workspace in memory at once; on a
# 16 GB board that fits, on smaller boards disk swap must make up the difference (zram lives in RAM).
BUILD_MEMORY_GB = 16
BUILD_DISK_BYTES = 10 * GIB  # ONNX export + engines + timing cache for one model
RUN_DISK_BYTES = 1 * GIB


@dataclass(frozen=True)
class Check:
    name: str
    detail: str
    level: str = "ok"  # ok | skip (does not apply here) | warn | fail
    fix: str = ""
    needed_for: tuple[str, ...] = ()  # actions a "fail" blocks; for the others it shows as a warning

    def status(self, action: str | None) -> str:
        if self.level == "fail":
            return "FAIL" if action is None or action in self.needed_for else "warn"
        return self.level


def _version(probe: ModuleProbe) -> str:
    return probe.version or "unknown version"


def check_device(facts: HostFacts, target: TargetRecord, reason: str) -> Check:
    dev = facts.device
    if not dev.is_jetson:
        detail = f"not a Jetson ({platform.machine()}); checking what applies to target {target.name}: {reason}"
        if target.is_jetson:
            return Check("device", detail, "fail", "run this on the Jetson: its engines are built and run on the "
                                                   "device; here use --target cpu, x86-gpu or rtx", ACTIONS)
        return Check("device", detail)
    jp = dev.jetpack
    if dev.l4t is None or jp is None:
        return Check("device", f"{dev.model or 'Jetson'}, L4T {dev.l4t or 'unknown'}: release not in the JetPack "
                               f"table (R35-R39); TensorRT expectations unknown; target {target.name}", "warn",
                     "check /etc/nv_tegra_release; supported: JetPack 6.1+ (R36.4+) and 7.x (R38, R39)")
    detail = (f"{dev.model}, L4T {dev.l4t} = JetPack {jp.jetpack} (TensorRT {jp.tensorrt}, CUDA {jp.cuda}); "
              f"target {target.name}: {reason}")
    if not jp.supported:
        return Check("device", detail, "fail", "flash JetPack 6.1 or newer (L4T R36.4+); NVILA engines need "
                                               "TensorRT 10 for INT4 weights", ACTIONS)
    return Check("device", detail)


def check_python(facts: HostFacts) -> Check:
    version = ".".join(map(str, facts.python))
    if facts.python[:2] < (3, 10):
        return Check("python", f"{version} at {sys.executable}", "fail",
                     "use Python 3.10 or newer (JetPack 6 ships 3.10, JetPack 7 ships 3.12)", ACTIONS)
    return Check("python", f"{version} at {sys.executable}")


def check_tensorrt(facts: HostFacts, target: TargetRecord) -> Check:
    if target.default_backend == "onnxruntime":
        return Check("tensorrt", f"not used by target {target.name} (ONNX Runtime backend)", "skip")
    if target.default_backend == "tensorrt-rtx":
        probe = facts.modules["tensorrt-rtx"]
        if probe.found:
            return Check("tensorrt-rtx", f"TensorRT-RTX {_version(probe)}")
        return Check("tensorrt-rtx", f"TensorRT-RTX not importable ({probe.error})", "fail",
                     TRT_INSTALL_HINTS["tensorrt-rtx"], ACTIONS)
    probe, dev, jp = facts.modules["tensorrt"], facts.device, facts.device.jetpack
    python = f"{facts.python[0]}.{facts.python[1]}"
    if not probe.found:
        if dev.is_jetson and jp and python != jp.python:
            fix = (f"JetPack {jp.jetpack} has TensorRT bindings for Python {jp.python} only: recreate the venv with "
                   f"/usr/bin/python{jp.python} -m venv --system-site-packages (jetson/install.sh does this)")
        elif dev.is_jetson:
            fix = ("sudo apt-get install python3-libnvinfer (JetPack's bindings; never pip install tensorrt on a "
                   "Jetson), and use a venv made with --system-site-packages (jetson/install.sh does both)")
        else:
            fix = "pip install tensorrt-cu12 (tensorrt-cu13 for a CUDA 13 driver)"
        return Check("tensorrt", f"not importable ({probe.error})", "fail", fix, ACTIONS)
    found = ".".join((probe.version or "").split(".")[:2])
    if dev.is_jetson and jp and found != jp.tensorrt:
        return Check("tensorrt", f"{_version(probe)}, but JetPack {jp.jetpack} ships TensorRT {jp.tensorrt}", "fail",
                     "a pip-installed tensorrt is shadowing JetPack's: pip uninstall -y tensorrt tensorrt-cu12 "
                     "tensorrt-cu13 (inside the venv)", ACTIONS)
    expected = f" (JetPack {jp.jetpack} ships {jp.tensorrt})" if dev.is_jetson and jp else ""
    return Check("tensorrt", f"{_version(probe)}{expected}; engines built with it run only with {found}")


def check_cuda_bindings(facts: HostFacts, target: TargetRecord) -> Check:
    if target.default_backend == "onnxruntime":
        return Check("cuda bindings", f"not used by target {target.name}", "skip")
    for package in CUDA_BINDINGS:  # the order the TensorRT backend tries them in
        if facts.modules[package].found:
            others = [p for p in CUDA_BINDINGS if p != package and facts.modules[p].found]
            also = f"; {', '.join(others)} also installed" if others else ""
            return Check("cuda bindings", f"{package} {_version(facts.modules[package])} (the TensorRT backend uses "
                                          f"it{also})")
    cuda = facts.device.jetpack.cuda if facts.device.jetpack else facts.device.cuda_version
    if cuda:
        major = int(cuda.split(".")[0])
        cuda_python = f"pip install 'cuda-python>={'.'.join(cuda.split('.')[:2])},<{major + 1}' (matches CUDA {cuda})"
    else:
        cuda_python = "pip install cuda-python (same major version as the CUDA driver)"
    fix = f"{cuda_python}, or pip install pycuda (builds against the CUDA toolkit)"
    errors = "; ".join(f"{p}: {facts.modules[p].error}" for p in CUDA_BINDINGS)
    return Check("cuda bindings", f"neither cuda-python nor pycuda importable ({errors})", "fail", fix,
                 ("run", "demo"))


def _system_opencv_install(facts: HostFacts) -> str:
    """JetPack 6 ships its own OpenCV package; on JetPack 7 Ubuntu's build (with GStreamer) is the one."""
    jp = facts.device.jetpack
    package = "nvidia-opencv" if jp and jp.jetpack.startswith("6") else "python3-opencv"
    return f"sudo apt-get install {package}"


def check_opencv(facts: HostFacts) -> Check:
    probe = facts.modules["opencv"]
    if not probe.found:
        fix = (f"{_system_opencv_install(facts)}, then use a venv made with --system-site-packages "
               f"(jetson/install.sh)" if facts.device.is_jetson else "pip install opencv-python-headless")
        return Check("opencv", f"cv2 not importable ({probe.error})", "fail", fix, ("run", "demo"))
    if facts.opencv_gstreamer:
        return Check("opencv", f"{_version(probe)} with GStreamer")
    if not facts.device.is_jetson:
        return Check("opencv", f"{_version(probe)} without GStreamer (fine here: V4L2 cameras, files and RTSP "
                               f"go through FFmpeg / V4L2)")
    csi = any(c.is_csi for c in facts.cameras)
    return Check("opencv", f"{_version(probe)} without GStreamer: CSI cameras and hardware decoding unavailable",
                 "fail" if csi else "warn",
                 f"install the system OpenCV with GStreamer ({_system_opencv_install(facts)}) and remove pip's "
                 f"wheel from the venv: pip uninstall -y opencv-python-headless opencv-python (jetson/install.sh "
                 f"does both); verify: python -c 'import cv2; print(cv2.getBuildInformation())' | grep GStreamer",
                 ("demo",))


def check_onnxruntime(facts: HostFacts, target: TargetRecord) -> Check:
    probe = facts.modules["onnxruntime"]
    if probe.found:
        return Check("onnxruntime", f"{_version(probe)}, providers: {', '.join(facts.ort_providers) or 'none'}")
    if target.default_backend == "onnxruntime":
        return Check("onnxruntime", f"not importable ({probe.error})", "fail", "pip install onnxruntime", ACTIONS)
    return Check("onnxruntime", f"not importable ({probe.error}); only --target cpu and reference checks use it",
                 "warn", "pip install onnxruntime")


def check_cameras(facts: HostFacts) -> Check:
    if not facts.cameras:
        return Check("cameras", "no /dev/video* devices; the demo can still read files, folders, RTSP and test://",
                     "warn", "plug in a USB camera or connect a CSI camera (it appears as /dev/video0)")
    listed = ", ".join(f"{c.path} ({c.name or 'unnamed'}{', CSI' if c.is_csi else ''})" for c in facts.cameras)
    blocked = [c.path for c in facts.cameras if not c.accessible]
    if blocked:
        return Check("cameras", f"{listed}; no read/write access to {', '.join(blocked)}", "fail",
                     "sudo usermod -aG video $USER, then log out and back in", ("demo",))
    return Check("cameras", listed)


def check_argus(facts: HostFacts) -> Check:
    if not facts.device.is_jetson:
        return Check("argus", "not a Jetson (Argus serves CSI cameras only)", "skip")
    if not any(c.is_csi for c in facts.cameras):
        return Check("argus", f"no CSI camera; nvargus-daemon {'running' if facts.argus_running else 'not running'}",
                     "skip")
    if facts.argus_running:
        return Check("argus", "nvargus-daemon running")
    return Check("argus", "CSI camera present but nvargus-daemon is not running", "fail",
                 "sudo systemctl restart nvargus-daemon", ("demo",))


def check_power(facts: HostFacts) -> Check:
    if not facts.device.is_jetson:
        return Check("power mode", "not a Jetson", "skip")
    power = facts.power
    if power is None:
        return Check("power mode", "could not read the power mode", "warn", "sudo nvpmodel -q")
    current = f"{power.current_name or '?'} (mode {power.current_id if power.current_id is not None else '?'})"
    if power.is_max:
        return Check("power mode", f"{current}; run sudo jetson_clocks before benchmarks to pin the clocks")
    best = power.max_mode
    fix = (f"sudo nvpmodel -m {best[0]} && sudo jetson_clocks   # {best[1]}" if best
           else "sudo nvpmodel -q --verbose lists the modes; sudo nvpmodel -m <MAXN id>, then sudo jetson_clocks")
    return Check("power mode", f"{current}: engines run slower than at the board's maximum", "warn", fix)


def check_memory(facts: HostFacts, target: TargetRecord) -> Check:
    info = facts.meminfo
    if "MemTotal" not in info:
        return Check("memory", "no /proc/meminfo on this system", "skip")
    disk_swap = sum(s.size_bytes for s in facts.swaps if not s.is_zram)
    zram = sum(s.size_bytes for s in facts.swaps if s.is_zram)
    detail = (f"RAM {info['MemTotal'] / GIB:.1f} GiB ({info.get('MemAvailable', 0) / GIB:.1f} available), "
              f"swap {disk_swap / GIB:.1f} GiB on disk + {zram / GIB:.1f} GiB zram")
    if not (facts.device.is_jetson and target.is_jetson):
        return Check("memory", detail)
    missing_gib = BUILD_MEMORY_GB - target.total_memory_gb - disk_swap / GIB
    if missing_gib <= 0:
        return Check("memory", f"{detail}; enough for engine builds")
    need = int(-(-missing_gib // 1))
    return Check("memory", f"{detail}; engine builds on {target.total_memory_gb} GB boards need {need} GiB more "
                           f"disk swap (RAM + disk swap >= {BUILD_MEMORY_GB} GB; zram lives in RAM and does not count)",
                 "fail", f"sudo fallocate -l {need}G /swapfile && sudo chmod 600 /swapfile && sudo mkswap /swapfile "
                         f"&& sudo swapon /swapfile   # keep it: add '/swapfile none swap sw 0 0' to /etc/fstab",
                 ("build",))


def check_disk(facts: HostFacts) -> Check:
    if facts.disk_free_bytes is None:
        return Check("disk", f"cannot read free space for {facts.cache_dir}", "warn",
                     f"mkdir -p {facts.cache_dir}, or set NVILA_EDGE_CACHE to a writable folder")
    free = facts.disk_free_bytes
    detail = f"{free / GIB:.1f} GiB free for the engine cache at {facts.cache_dir}"
    if free >= BUILD_DISK_BYTES:
        return Check("disk", detail)
    return Check("disk", f"{detail}; builds need {BUILD_DISK_BYTES // GIB} GiB", "fail",
                 "free space on that disk, or set NVILA_EDGE_CACHE to a folder on a bigger disk (e.g. the NVMe)",
                 ("build",) if free >= RUN_DISK_BYTES else ACTIONS)


def check_preprocess(facts: HostFacts) -> Check:
    path, detail = facts.preprocess
    if path == "native":
        return Check("preprocessing", detail)
    fix = ("on a Jetson run jetson/install.sh (it builds the native library with CUDA); elsewhere install a C++ "
           "compiler (apt-get install g++) and reinstall nvila-edge")
    return Check("preprocessing", f"{detail}; frames take several times longer to tile", "warn", fix)


def run_checks(facts: HostFacts, target: TargetRecord, reason: str) -> list[Check]:
    return [
        check_device(facts, target, reason),
        check_python(facts),
        check_tensorrt(facts, target),
        check_cuda_bindings(facts, target),
        check_opencv(facts),
        check_onnxruntime(facts, target),
        check_preprocess(facts),
        check_cameras(facts),
        check_argus(facts),
        check_power(facts),
        check_memory(facts, target),
        check_disk(facts),
    ]


def exit_code(checks: list[Check], action: str | None) -> int:
    """1 when a check the action needs failed (any failure without an action), else 0."""
    return int(any(c.status(action) == "FAIL" for c in checks))


def render_table(checks: list[Check], action: str | None) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'status':6}  {'check':{width}}  detail"]
    for check in checks:
        status = check.status(action)
        blocks = f" [needed for {', '.join(check.needed_for)}]" if status == "warn" and check.level == "fail" else ""
        lines.append(f"{status:6}  {check.name:{width}}  {check.detail}{blocks}")
        if check.fix and status in ("FAIL", "warn"):
            lines.append(f"{'':6}  {'':{width}}  fix: {check.fix}")
    return "\n".join(lines)
