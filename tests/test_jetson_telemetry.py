import shutil
import sys
import time
from pathlib import Path

import pytest

from nvila_edge.jetson.telemetry import (
    PowerRail,
    TegrastatsMonitor,
    Telemetry,
    parse_tegrastats_line,
    proc_metrics,
    read_process_memory,
    summarize,
)

TEGRASTATS = Path(__file__).parent / "fixtures" / "jetson" / "tegrastats"


def _lines(name: str) -> list[str]:
    return (TEGRASTATS / name).read_text().splitlines()


def test_jetpack6_orin_8gb_line():
    sample = parse_tegrastats_line(_lines("jp6-orin-8gb.txt")[0])
    assert (sample.ram_used_mb, sample.ram_total_mb) == (6982, 7620)
    assert (sample.swap_used_mb, sample.swap_total_mb) == (2640, 16384)
    assert sample.gpu_load_pct == 84 and sample.gpu_freq_mhz == (713,)
    assert sample.cpu_load_pct == (97, 95, 95, 91, 88, 93)
    assert sample.rails["VDD_IN"] == PowerRail(17946, 15710)
    assert sample.module_power_mw == 17946  # VDD_IN already includes the other two rails
    assert sample.temperatures_c["tj"] == 65.562 and sample.temperatures_c["gpu"] == 63.5
    assert sample.timestamp == "05-15-2025 18:30:28"


def test_jetpack6_agx_orin_sums_rails_without_vdd_in():
    first, second = (parse_tegrastats_line(line) for line in _lines("jp6-agx-orin-64gb.txt"))
    assert set(first.rails) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"}
    assert first.module_power_mw == 2412 + 1607 + 4707
    assert first.gpu_load_pct == 0 and first.gpu_freq_mhz == (0, 0) and len(first.cpu_load_pct) == 12
    assert second.rails["VIN_SYS_5V0"] == PowerRail(4607, 4657)
    summary = summarize([first, second])
    assert summary == {"samples": 2, "ram_peak_mb": 18207, "gpu_load_mean_pct": 0.0,
                       "power_mean_mw": (8726 + 8626) / 2, "power_peak_mw": 8726}


def test_jetpack7_thor_has_clocks_but_no_gpu_load():
    sample = parse_tegrastats_line(_lines("jp71-thor.txt")[0])
    assert sample.ram_total_mb == 125773 and len(sample.cpu_load_pct) == 14
    assert sample.gpu_load_pct is None and sample.gpu_freq_mhz == (0, 0, 0)
    assert sample.rails["VDD_CPU_SOC_MSS"] == PowerRail(4923, 4544)
    assert sample.module_power_mw == 0 + 4923 + 4327
    assert summarize([sample])["gpu_load_mean_pct"] is None


def test_jetpack72_peak_columns():
    thor = parse_tegrastats_line(_lines("jp72-thor.txt")[0])
    assert thor.rails["VDD_CPU_SOC_MSS"] == PowerRail(7953, 8332, 8710)
    assert thor.temperatures_c["cpu"] == 34.312  # current, not the peak after the slash
    assert thor.gpu_freq_mhz == (314, 314, 314)
    agx = parse_tegrastats_line(_lines("jp72-agx-orin-64gb.txt")[0])
    assert agx.cpu_load_pct[-4:] == (None, None, None, None) and agx.cpu_load_pct[0] == 78
    assert agx.temperatures_c["soc1"] == 49.0
    assert agx.rails["VDD_CPU_CV"].peak_mw == 2643


def test_lines_without_a_sample_are_skipped():
    assert parse_tegrastats_line("") is None
    assert parse_tegrastats_line("NVPMWARN: running without root, some rails are hidden") is None


def test_proc_metrics_from_a_fake_root(tmp_path):
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "meminfo").write_text(
        "MemTotal:        7802736 kB\nMemFree:   100 kB\nMemAvailable:    6245596 kB\n")
    (tmp_path / "proc" / "self" / "status").write_text("Name:\tpython3\nVmHWM:\t  812000 kB\nVmRSS:\t  650000 kB\n")
    metrics = proc_metrics(tmp_path)
    assert metrics.source == "proc"
    assert metrics.ram_used_mb == pytest.approx((7802736 - 6245596) / 1024)
    assert metrics.ram_total_mb == pytest.approx(7802736 / 1024)
    assert metrics.process_rss_mb == pytest.approx(650000 / 1024)
    assert metrics.process_peak_rss_mb == pytest.approx(812000 / 1024)
    assert metrics.as_dict()["gpu_load_pct"] is None
    assert read_process_memory(tmp_path, "4242") == (None, None)


def test_real_proc_of_this_process():
    rss, peak = read_process_memory()
    if rss is None:
        pytest.skip("no /proc on this system")
    assert 0 < rss <= peak
    metrics = Telemetry().snapshot()
    assert metrics.source == "proc" and metrics.process_rss_mb > 1 and metrics.ram_total_mb > metrics.ram_used_mb


@pytest.mark.skipif(shutil.which("tegrastats") is not None, reason="this machine has tegrastats")
def test_open_without_tegrastats_reports_from_proc():
    with Telemetry.open() as telemetry:
        assert telemetry.tegrastats is None
        assert telemetry.snapshot().power_mw is None


def _fake_tegrastats(tmp_path: Path, fixture: str) -> list[str]:
    """A real child process printing fixture lines the way tegrastats does, then idling until stopped."""
    script = tmp_path / "tegrastats.py"
    script.write_text("import sys, time\n"
                      f"for line in open({str(TEGRASTATS / fixture)!r}):\n"
                      "    print(line, end='', flush=True)\n"
                      "print('NVPMWARN: not a sample', flush=True)\n"
                      "time.sleep(60)\n")
    return [sys.executable, str(script)]


def _wait_for(monitor: TegrastatsMonitor, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(monitor.samples_since(0.0)) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def test_monitor_reads_a_running_process(tmp_path):
    start = time.monotonic()
    with TegrastatsMonitor(command=_fake_tegrastats(tmp_path, "jp6-agx-orin-64gb.txt")) as monitor:
        _wait_for(monitor, 2)
        assert [s.ram_used_mb for s in monitor.samples_since(start)] == [18207, 18202]
        assert monitor.latest().rails["VIN_SYS_5V0"].current_mw == 4607
        assert monitor.samples_since(time.monotonic() + 1) == []
        assert monitor.running
    assert not monitor.running  # stopped with the context


def test_telemetry_combines_tegrastats_with_process_memory(tmp_path):
    monitor = TegrastatsMonitor(command=_fake_tegrastats(tmp_path, "jp6-orin-8gb.txt")).start()
    with Telemetry(tegrastats=monitor) as telemetry:
        _wait_for(monitor, 1)
        metrics = telemetry.snapshot()
    assert metrics.source == "tegrastats"
    assert (metrics.ram_used_mb, metrics.gpu_load_pct, metrics.power_mw) == (6982.0, 84.0, 17946)
    assert metrics.rails_mw == {"VDD_IN": 17946, "VDD_CPU_GPU_CV": 8896, "VDD_SOC": 3923}
    if Path("/proc/self/status").exists():
        assert metrics.process_rss_mb > 1
