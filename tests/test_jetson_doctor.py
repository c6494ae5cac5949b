import argparse
import dataclasses
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from nvila_edge.cli import build_parser
from nvila_edge.commands.doctor import DoctorCommand
from nvila_edge.engines.targets import get_target
from nvila_edge.jetson.device import VideoDevice, detect_target
from nvila_edge.jetson.doctor import GIB, exit_code, render_table, run_checks
from nvila_edge.jetson.host_facts import ModuleProbe, gather_facts, parse_opencv_gstreamer

ROOTS = Path(__file__).parent / "fixtures" / "jetson" / "roots"


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    """Facts of the Orin Nano 8GB fixture root, with this machine's real Python packages."""
    return gather_facts(ROOTS / "orin-nano-8gb-jp62", tmp_path_factory.mktemp("cache"))


def _checks(facts, target_name=None, root=None):
    target, reason = (get_target(target_name), "chosen") if target_name else detect_target(root)
    return {c.name: c for c in run_checks(facts, target, reason)}


def _with_modules(facts, **probes):
    return dataclasses.replace(facts, modules={**facts.modules, **probes})


def test_nano_root_reports_every_jetson_problem_with_its_fix(nano):
    checks = _checks(nano, root=ROOTS / "orin-nano-8gb-jp62")
    assert "JetPack 6.2" in checks["device"].detail and "orin-nano-8gb" in checks["device"].detail
    assert checks["device"].level == "ok"
    assert checks["argus"].level == "ok" and "CSI" in checks["cameras"].detail
    assert checks["power mode"].level == "warn"
    assert checks["power mode"].fix.startswith("sudo nvpmodel -m 2 && sudo jetson_clocks")
    memory = checks["memory"]
    assert memory.level == "fail" and memory.needed_for == ("build",)
    assert "need 8 GiB more disk swap" in memory.detail and "3.7 GiB zram" in memory.detail
    assert "sudo fallocate -l 8G /swapfile" in memory.fix


def test_opencv_without_gstreamer_blocks_the_demo_only_with_a_csi_camera(nano):
    pip_opencv = dataclasses.replace(nano, opencv_gstreamer=False)
    check = _checks(pip_opencv, "orin-nano-8gb")["opencv"]
    assert check.level == "fail" and check.needed_for == ("demo",)
    assert "pip uninstall -y opencv-python-headless" in check.fix and "nvidia-opencv" in check.fix
    usb_only = dataclasses.replace(pip_opencv, cameras=(VideoDevice("/dev/video0", "USB Camera", True),))
    assert _checks(usb_only, "orin-nano-8gb")["opencv"].level == "warn"
    assert _checks(dataclasses.replace(nano, opencv_gstreamer=True), "orin-nano-8gb")["opencv"].level == "ok"


def test_missing_tensorrt_fix_depends_on_the_python(nano):
    no_trt = _with_modules(nano, tensorrt=ModuleProbe(None, "ModuleNotFoundError: No module named 'tensorrt'"))
    other_python = _checks(dataclasses.replace(no_trt, python=(3, 11, 7)), "orin-nano-8gb")["tensorrt"]
    assert other_python.level == "fail" and "No module named 'tensorrt'" in other_python.detail
    assert "/usr/bin/python3.10 -m venv --system-site-packages" in other_python.fix
    system_python = _checks(dataclasses.replace(no_trt, python=(3, 10, 12)), "orin-nano-8gb")["tensorrt"]
    assert system_python.fix.startswith("sudo apt-get install python3-libnvinfer")
    assert "never pip install tensorrt" in system_python.fix


def test_tensorrt_version_must_be_jetpacks(nano):
    good = _checks(_with_modules(nano, tensorrt=ModuleProbe("10.3.0.30")), "orin-nano-8gb")["tensorrt"]
    assert good.level == "ok" and "JetPack 6.2 ships 10.3" in good.detail
    pip_wheel = _checks(_with_modules(nano, tensorrt=ModuleProbe("10.16.1.11")), "orin-nano-8gb")["tensorrt"]
    assert pip_wheel.level == "fail" and "pip uninstall -y tensorrt" in pip_wheel.fix
    assert set(pip_wheel.needed_for) == {"build", "demo", "run"}


def test_cuda_bindings_fix_pins_the_jetpack_cuda_major(nano, tmp_path):
    missing = {"cuda-python": ModuleProbe(None, "not installed"), "pycuda": ModuleProbe(None, "not installed")}
    jp6 = _checks(_with_modules(nano, **missing), "orin-nano-8gb")["cuda bindings"]
    assert jp6.level == "fail" and "'cuda-python>=12.6,<13'" in jp6.fix and jp6.needed_for == ("run", "demo")
    agx = _with_modules(gather_facts(ROOTS / "orin-agx-64gb-jp72", tmp_path), **missing)
    assert "'cuda-python>=13.2,<14'" in _checks(agx, "orin-agx-64gb")["cuda bindings"].fix
    assert jp6.fix.endswith(", or pip install pycuda (builds against the CUDA toolkit)")
    assert jp6.detail.startswith("neither cuda-python nor pycuda importable (cuda-python: not installed; pycuda: ")
    alone = _checks(_with_modules(nano, **{**missing, "pycuda": ModuleProbe("2024.1")}), "orin-nano-8gb")
    assert alone["cuda bindings"].level == "ok"
    assert alone["cuda bindings"].detail == "pycuda 2024.1 (the TensorRT backend uses it)"
    both = _checks(_with_modules(nano, **{"cuda-python": ModuleProbe("12.6.2"), "pycuda": ModuleProbe("2024.1")}),
                   "orin-nano-8gb")["cuda bindings"]
    assert both.detail == "cuda-python 12.6.2 (the TensorRT backend uses it; pycuda also installed)"


def test_nx_root_power_mode_fix_and_enough_memory(tmp_path):
    facts = gather_facts(ROOTS / "orin-nx-16gb-jp621", tmp_path)
    checks = _checks(facts, root=ROOTS / "orin-nx-16gb-jp621")
    assert checks["power mode"].detail.startswith("15W (mode 2)")
    assert checks["power mode"].fix.startswith("sudo nvpmodel -m 0 && sudo jetson_clocks")
    assert checks["memory"].level == "ok" and "enough for engine builds" in checks["memory"].detail
    assert checks["argus"].level == "skip"
    assert checks["cameras"].detail.count("HD Pro Webcam C920") == 2


def test_agx_jetpack72_wants_python_312_bindings(tmp_path):
    facts = gather_facts(ROOTS / "orin-agx-64gb-jp72", tmp_path)
    checks = _checks(facts, root=ROOTS / "orin-agx-64gb-jp72")
    assert "JetPack 7.2 (TensorRT 10.16, CUDA 13.2)" in checks["device"].detail
    assert checks["power mode"].level == "ok" and "jetson_clocks" in checks["power mode"].detail
    assert checks["memory"].level == "ok" and "2.0 GiB on disk" in checks["memory"].detail
    no_trt = dataclasses.replace(facts, python=(3, 10, 12),
                                 modules={**facts.modules, "tensorrt": ModuleProbe(None, "x")})
    assert "Python 3.12 only" in _checks(no_trt, "orin-agx-64gb")["tensorrt"].fix


def test_unsupported_jetpack_blocks_everything(tmp_path):
    root = tmp_path / "root"
    (root / "proc" / "device-tree").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "proc" / "device-tree" / "model").write_bytes(b"Jetson AGX Orin\x00")
    (root / "proc" / "meminfo").write_text("MemTotal:       31000000 kB\nMemAvailable:   28000000 kB\n")
    (root / "etc" / "nv_tegra_release").write_text("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, "
                                                   "EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n")
    checks = _checks(gather_facts(root, tmp_path), root=root)
    assert checks["device"].level == "fail" and "flash JetPack 6.1" in checks["device"].fix
    assert exit_code(list(checks.values()), "run") == 1


def test_off_jetson_root_needs_nothing_jetson(tmp_path):
    facts = _with_modules(gather_facts(tmp_path / "empty-root", tmp_path), opencv=ModuleProbe("4.8.0"),
                          onnxruntime=ModuleProbe("1.20.0"))
    checks = _checks(facts, root=tmp_path / "empty-root")
    assert checks["device"].detail.startswith("not a Jetson") and "target cpu" in checks["device"].detail
    assert {checks[n].level for n in ("tensorrt", "cuda bindings", "argus", "power mode", "memory")} == {"skip"}
    assert checks["cameras"].level == "warn"
    for action in ("build", "demo", "run", None):
        assert exit_code(list(checks.values()), action) == 0
    no_ort = _checks(_with_modules(facts, onnxruntime=ModuleProbe(None, "not installed")), "cpu")["onnxruntime"]
    assert no_ort.level == "fail" and no_ort.fix == "pip install onnxruntime"


def test_jetson_target_off_a_jetson_fails(tmp_path):
    checks = _checks(gather_facts(ROOTS / "x86-nvidia-driver", tmp_path), "orin-nano-8gb")
    assert checks["device"].level == "fail" and "run this on the Jetson" in checks["device"].fix
    assert checks["memory"].level == "ok"  # the swap rule is for the board itself


def test_x86_driver_root_checks_tensorrt(tmp_path):
    facts = _with_modules(gather_facts(ROOTS / "x86-nvidia-driver", tmp_path), tensorrt=ModuleProbe(None, "No module"))
    checks = _checks(facts, root=ROOTS / "x86-nvidia-driver")
    assert "x86-gpu" in checks["device"].detail
    assert checks["tensorrt"].fix == "pip install tensorrt-cu12 (tensorrt-cu13 for a CUDA 13 driver)"


def test_exit_code_and_table_follow_the_requested_action(tmp_path):
    facts = _with_modules(gather_facts(tmp_path / "empty-root", tmp_path), opencv=ModuleProbe("4.8.0"),
                          onnxruntime=ModuleProbe("1.20.0"))
    low_disk = dataclasses.replace(facts, disk_free_bytes=5 * GIB, opencv_gstreamer=False,
                                   cameras=(VideoDevice("/dev/video0", "USB Camera", False),))
    checks = run_checks(low_disk, get_target("cpu"), "test")
    assert exit_code(checks, "build") == 1 and exit_code(checks, "demo") == 1 and exit_code(checks, None) == 1
    assert exit_code(checks, "run") == 0  # disk space blocks builds, camera access blocks the demo
    no_disk = run_checks(dataclasses.replace(low_disk, disk_free_bytes=GIB // 2), get_target("cpu"), "test")
    assert exit_code(no_disk, "run") == 1
    table = render_table(checks, "run")
    disk_row = next(line for line in table.splitlines() if line.split()[1:2] == ["disk"])
    assert disk_row.startswith("warn") and disk_row.endswith("[needed for build]")
    assert "fix: sudo usermod -aG video $USER" in table
    assert table.splitlines()[0].split() == ["status", "check", "detail"]


def test_opencv_build_information_parsing():
    assert parse_opencv_gstreamer("  Video I/O:\n    GStreamer:                   YES (1.20.3)\n") is True
    assert parse_opencv_gstreamer("  Video I/O:\n    GStreamer:                   NO\n") is False
    assert parse_opencv_gstreamer("no video section") is None
    cv2 = pytest.importorskip("cv2")
    assert parse_opencv_gstreamer(cv2.getBuildInformation()) in (True, False)


def _run_doctor(argv: list[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    command = DoctorCommand()
    command.add_arguments(parser)
    out = io.StringIO()
    with redirect_stdout(out):
        code = command.run(parser.parse_args(argv))
    return code, out.getvalue()


def test_doctor_command_on_this_machine(tmp_path):
    if detect_target(Path("/"))[0].name != "cpu":
        pytest.skip("this machine is a Jetson or has an NVIDIA driver")
    code, out = _run_doctor(["--for", "run", "--cache-dir", str(tmp_path)])
    assert "not a Jetson" in out and "target cpu" in out
    assert code == exit_code_expected(out)
    code, out = _run_doctor(["--target", "orin-nano-8gb", "--for", "run", "--cache-dir", str(tmp_path)])
    assert code == 1 and "FAIL    device" in out


def test_rtx_target_finds_tensorrt_rtx_wherever_the_build_does(tmp_path):
    """doctor probes the same import names the builder and the runtime import."""
    from nvila_edge.errors import UnsupportedError
    from nvila_edge.runtime.backends.trt_api import import_trt

    try:
        import_trt("tensorrt-rtx")
    except UnsupportedError:
        pytest.skip("needs the tensorrt-rtx extra")
    code, out = _run_doctor(["--target", "rtx", "--for", "build", "--cache-dir", str(tmp_path)])
    assert "ok      tensorrt-rtx   TensorRT-RTX 1." in out, out
    assert "FAIL    tensorrt-rtx" not in out


def exit_code_expected(out: str) -> int:
    return int(any(line.startswith("FAIL") for line in out.splitlines()))


def test_doctor_command_reads_a_fake_root(tmp_path):
    root = str(ROOTS / "orin-nano-8gb-jp62")
    code, out = _run_doctor(["--root", root, "--for", "build", "--cache-dir", str(tmp_path)])
    assert code == 1
    assert "target orin-nano-8gb" in out and "FAIL    memory" in out and "fix: sudo fallocate -l 8G" in out


def test_help_documents_the_exit_codes():
    parser = build_parser([DoctorCommand()])
    sub = parser._subparsers._group_actions[0].choices["doctor"]
    text = sub.format_help()
    assert "exit status:" in text
    for line in ("0  nothing the requested action needs is missing", "1  something the requested action needs",
                 "2  bad command line"):
        assert line in text
    assert "--for {build,demo,run}" in text and "--root" in text


def test_doctor_says_which_preprocessing_path_runs(nano):
    from nvila_edge.runtime import preprocess

    checks = _checks(nano, "orin-nano-8gb")
    assert checks["preprocessing"].detail == preprocess.describe_path()
    numpy_only = dataclasses.replace(nano, preprocess=("numpy", "numpy (the native library is not built: ...)"))
    check = _checks(numpy_only, "orin-nano-8gb")["preprocessing"]
    assert check.level == "warn" and "jetson/install.sh" in check.fix
    assert exit_code([check], "run") == 0  # slower, not broken
