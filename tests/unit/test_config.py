"""vk_eci.config: flags, VK_ECI_* env vars and a YAML file merged into validated Settings."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from vk_eci import config
from vk_eci.cli import build_parser, main

BASE = ["--region", "cn-hangzhou", "--vswitch", "vsw-a", "--security-group", "sg-1"]


def settings(argv: list[str], env: dict[str, str] | None = None) -> config.Settings:
    args = build_parser().parse_args(["run", *argv])
    return config.from_args(args, env=env or {})


def test_defaults() -> None:
    s = settings(BASE)
    assert s.node_name == "virtual-kubelet"
    assert s.vswitches == ("vsw-a",)
    assert s.eci_endpoint == "eci.cn-hangzhou.aliyuncs.com"
    assert s.eci_protocol == "https"
    assert s.kubelet_port == 10250
    assert (s.lease_duration, s.lease_renew_interval) == (40.0, 10.0)
    assert s.imagecache_controller is True
    assert s.kubeconfig is None
    # No name given: derived at start-up from the kube-system namespace.
    assert (s.cluster_name, s.legacy_cluster_name) == ("", "")
    assert (s.status_sync_mode, s.status_poll_interval, s.status_poll_fast_interval,
            s.status_resync_interval) == ("incremental", 1.0, 0.25, 60.0)


def test_cluster_dns_flags() -> None:
    s = settings([*BASE, "--cluster-dns", "10.96.0.10,fd00::a", "--cluster-domain", "k8s.test."])
    assert (s.cluster_dns, s.cluster_domain) == (("10.96.0.10", "fd00::a"), "k8s.test")
    assert (settings(BASE).cluster_dns, settings(BASE).cluster_domain) == ((), "cluster.local")
    env = settings(BASE, {"VK_ECI_CLUSTER_DNS": "10.0.0.10"})
    assert env.cluster_dns == ("10.0.0.10",)


def test_several_vswitches_repeat_and_comma() -> None:
    s = settings([*BASE, "--vswitch", "vsw-b,vsw-c"])
    assert s.vswitches == ("vsw-a", "vsw-b", "vsw-c")


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    f = tmp_path / "vk.yaml"
    f.write_text("node-name: from-file\ncluster_name: file-cluster\npods: 50\n"
                 "vswitch: [vsw-f]\nlease-renew-interval: 5s\n")
    env = {"VK_ECI_NODE_NAME": "from-env", "VK_ECI_PODS": "70"}
    s = settings([*BASE, "--config", str(f), "--pods", "90"], env)
    assert s.pods == 90  # flag
    assert s.node_name == "from-env"  # env over file
    assert s.cluster_name == "file-cluster"  # file over default
    assert s.vswitches == ("vsw-a",)  # flag over file
    assert s.lease_renew_interval == 5.0
    assert s.cpu == "1000"  # default


def test_env_only_configuration() -> None:
    env = {"VK_ECI_REGION": "cn-beijing", "VK_ECI_VSWITCHES": "vsw-1,vsw-2",
           "VK_ECI_SECURITY_GROUP": "sg-9", "VK_ECI_IMAGECACHE_CONTROLLER": "false",
           "VK_ECI_ECI_ENDPOINT": "127.0.0.1:8089", "VK_ECI_ECI_PROTOCOL": "HTTP"}
    s = settings([], env)
    assert (s.region, s.vswitches, s.security_group) == ("cn-beijing", ("vsw-1", "vsw-2"), "sg-9")
    assert s.imagecache_controller is False
    assert (s.eci_endpoint, s.eci_protocol) == ("127.0.0.1:8089", "http")


@pytest.mark.parametrize("endpoint", ["127.0.0.1:8089", "127.3.4.5", "localhost:80",
                                      "[::1]:8089"])
def test_plain_http_to_loopback_is_accepted(endpoint: str) -> None:
    s = settings([*BASE, "--eci-protocol", "http", "--eci-endpoint", endpoint])
    assert s.eci_protocol == "http" and not s.insecure_eci_endpoint


def test_plain_http_elsewhere_needs_the_insecure_flag() -> None:
    s = settings([*BASE, "--eci-protocol", "http", "--eci-endpoint", "10.0.0.1:80",
                  "--insecure-eci-endpoint"])
    assert (s.eci_protocol, s.eci_endpoint, s.insecure_eci_endpoint) == (
        "http", "10.0.0.1:80", True)


def test_vk_eci_run_refuses_plain_http_to_a_remote_endpoint() -> None:
    """The real command: it stops before contacting anything, naming the flag and the fix."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "vk_eci", "run", *BASE, "--eci-protocol",
                          "http", "--eci-endpoint", "192.0.2.1:80"],
                         capture_output=True, text=True, timeout=60, env={
                             **os.environ, "ALIBABA_CLOUD_ACCESS_KEY_ID": "AK",
                             "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "SK"})
    assert out.returncode != 0
    assert "--insecure-eci-endpoint" in out.stderr and "192.0.2.1:80" in out.stderr


def test_imagecache_advisor_settings() -> None:
    s = settings(BASE)
    assert s.imagecache_advisor == "off"
    assert s.imagecache_advisor_configmap == "kube-system/vk-eci-advisor-virtual-kubelet"
    s = settings([*BASE, "--imagecache-advisor", "Apply", "--imagecache-advisor-interval", "30",
                  "--imagecache-advisor-max-caches", "3", "--imagecache-advisor-max-gib", "100",
                  "--imagecache-advisor-cost-per-gib-day", "0.5",
                  "--imagecache-advisor-configmap", "vk/advice"],
                 {"VK_ECI_IMAGECACHE_ADVISOR_WINDOW": "3600"})
    assert (s.imagecache_advisor, s.imagecache_advisor_interval,
            s.imagecache_advisor_max_caches, s.imagecache_advisor_max_gib,
            s.imagecache_advisor_cost_per_gib_day, s.imagecache_advisor_configmap,
            s.imagecache_advisor_window) == ("apply", 30.0, 3, 100, 0.5, "vk/advice", 3600.0)


def test_no_imagecache_controller_flag_beats_env() -> None:
    s = settings([*BASE, "--imagecache-controller"], {"VK_ECI_IMAGECACHE_CONTROLLER": "false"})
    assert s.imagecache_controller is True
    assert settings([*BASE, "--no-imagecache-controller"]).imagecache_controller is False


@pytest.mark.parametrize(("argv", "env", "needle"), [
    ([], {}, "--region is required"),
    (["--region", "cn-hangzhou", "--security-group", "sg-1"], {}, "--vswitch is required"),
    ([*BASE, "--region", "Hangzhou"], {}, "--region: 'Hangzhou'"),
    ([*BASE, "--vswitch", "subnet-1"], {}, "--vswitch: 'subnet-1'"),
    ([*BASE, "--node-name", "Virtual_Kubelet"], {}, "--node-name: 'Virtual_Kubelet'"),
    ([*BASE, "--cpu", "lots"], {}, "--cpu: 'lots'"),
    ([*BASE, "--memory", "0Gi"], {}, "--memory: '0Gi' must be positive"),
    ([*BASE, "--pods", "0"], {}, "--pods: 0"),
    ([*BASE, "--gpu", "-1"], {}, "--gpu: -1 must not be negative"),
    ([*BASE, "--ephemeral-storage", "big"], {}, "--ephemeral-storage: 'big'"),
    ([*BASE, "--architecture", "riscv64"], {}, "--architecture: 'riscv64'"),
    ([*BASE, "--kubelet-port", "70000"], {}, "--kubelet-port: 70000"),
    ([*BASE, "--metrics-addr", "nowhere"], {}, "--metrics-addr: 'nowhere'"),
    ([*BASE, "--log-level", "loud"], {}, "--log-level: 'loud'"),
    ([*BASE, "--eci-protocol", "ftp"], {}, "--eci-protocol: 'ftp'"),
    ([*BASE, "--eci-endpoint", "http://127.0.0.1:80"], {}, "--eci-endpoint"),
    # Clear text only to this machine: not to a remote host, not to ECI's own endpoint.
    ([*BASE, "--eci-protocol", "http", "--eci-endpoint", "10.0.0.1:80"], {},
     "--eci-protocol: http to '10.0.0.1:80' is refused"),
    ([*BASE, "--eci-protocol", "http"], {}, "--eci-protocol: http to 'eci.cn-hangzhou"),
    ([*BASE, "--eci-protocol", "http", "--eci-endpoint", "127.0.0.1.evil.com:80"], {},
     "is refused"),
    (BASE, {"VK_ECI_ECI_PROTOCOL": "http", "VK_ECI_ECI_ENDPOINT": "eci.example.com"},
     "is refused"),
    ([*BASE, "--lease-renew-interval", "50"], {}, "--lease-renew-interval"),
    ([*BASE, "--lease-duration", "0"], {}, "--lease-duration: 0.0"),
    ([*BASE, "--status-sync-mode", "push"], {}, "--status-sync-mode: 'push'"),
    ([*BASE, "--status-poll-interval", "0"], {}, "--status-poll-interval: 0.0"),
    ([*BASE, "--status-poll-fast-interval", "2"], {}, "--status-poll-fast-interval"),
    (BASE, {"VK_ECI_PODS": "many"}, "--pods: 'many' is not an integer"),
    ([*BASE, "--cluster-name", "acs:prod"], {}, "--cluster-name: 'acs:prod'"),
    ([*BASE, "--cluster-name", "c" * 129], {}, "at most 128 characters"),
    ([*BASE, "--cluster-dns", "kube-dns"], {}, "--cluster-dns: 'kube-dns'"),
    ([*BASE, "--cluster-domain", "Bad_Domain"], {}, "--cluster-domain: 'Bad_Domain'"),
    (BASE, {"VK_ECI_IMAGECACHE_CONTROLLER": "maybe"}, "--imagecache-controller: 'maybe'"),
    ([*BASE, "--imagecache-advisor", "auto"], {}, "--imagecache-advisor: 'auto' must be one"),
    ([*BASE, "--imagecache-advisor-interval", "0"], {}, "--imagecache-advisor-interval: 0.0"),
    ([*BASE, "--imagecache-advisor-max-gib", "-1"], {}, "--imagecache-advisor-max-gib: -1"),
    ([*BASE, "--imagecache-advisor-cost-per-gib-day", "cheap"], {},
     "--imagecache-advisor-cost-per-gib-day: 'cheap' is not a number"),
    ([*BASE, "--imagecache-advisor-cost-per-gib-day", "-2"], {}, "must be a finite number"),
    ([*BASE, "--imagecache-advisor-hit-overhead", "-1"], {},
     "--imagecache-advisor-hit-overhead: -1.0 must be a finite number"),
    ([*BASE, "--imagecache-advisor-configmap", "just-a-name"], {},
     "--imagecache-advisor-configmap: 'just-a-name' is not NAMESPACE/NAME"),
    ([*BASE, "--kubelet-exec-idle-timeout", "-1"], {},
     "--kubelet-exec-idle-timeout: -1.0 must be 0 (off)"),
    (BASE, {"VK_ECI_KUBELET_EXEC_MAX_DURATION": "inf"}, "--kubelet-exec-max-duration: inf"),
])
def test_bad_setting_is_named(argv: list[str], env: dict[str, str], needle: str) -> None:
    with pytest.raises(config.ConfigError) as e:
        settings(argv, env)
    assert needle in str(e.value)


def test_file_errors_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(config.ConfigError, match="cannot read"):
        settings([*BASE, "--config", str(missing)])
    bad = tmp_path / "bad.yaml"
    bad.write_text("node-name: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        settings([*BASE, "--config", str(bad)])
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("nodename: x\n")
    with pytest.raises(config.ConfigError, match="unknown setting 'nodename'"):
        settings([*BASE, "--config", str(unknown)])


def test_credentials_never_from_file_and_never_echoed(tmp_path: Path) -> None:
    f = tmp_path / "creds.yaml"
    f.write_text("access-key-secret: SUPERSECRETVALUE\n")
    with pytest.raises(config.ConfigError) as e:
        settings([*BASE, "--config", str(f)])
    assert "credential chain" in str(e.value)
    assert "SUPERSECRETVALUE" not in str(e.value)


def test_no_credential_flag() -> None:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    flags = {s for a in parser._actions for s in a.option_strings}
    assert not {f for f in flags if "secret" in f or "access-key" in f}


def test_cli_bad_flag_is_one_clear_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", *BASE, "--cpu", "lots"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "--cpu" in err and "lots" in err


def test_quantities() -> None:
    assert config.parse_quantity("cpu", "500m") == config.parse_quantity("cpu", "0.5")
    assert config.parse_quantity("memory", "4Gi") == 4 * 2**30
    assert config.parse_quantity("memory", "1k") == 1000


def test_eci_rate_limits_override_the_client_budgets_and_zero_is_unlimited() -> None:
    import asyncio

    from vk_eci.cloud.api.ratelimit import RateLimiter

    s = settings([*BASE, "--eci-rate-limits", "CreateContainerGroup=0",
                  "--eci-rate-limits", "DescribeContainerGroups=6000"])
    assert s.eci_rate_limits == {"CreateContainerGroup": 0.0, "DescribeContainerGroups": 6000.0}
    with pytest.raises(config.ConfigError, match="--eci-rate-limits: Create='-1' must be"):
        settings([*BASE, "--eci-rate-limits", "Create=-1"])
    limiter = RateLimiter(s.eci_rate_limits)

    async def burst() -> float:
        return sum([await limiter.acquire("CreateContainerGroup") for _ in range(5000)])
    assert asyncio.run(burst()) == 0.0  # never waits: unlimited


def test_eci_rate_limits_set_the_interactive_share_too() -> None:
    """An account with a smaller (or shared) quota shrinks both shares, so that the two
    together stay within it."""
    from vk_eci.cloud.api.ratelimit import INTERACTIVE, RateLimiter

    s = settings([*BASE, "--eci-rate-limits",
                  "DescribeContainerGroups=40,DescribeContainerGroups@interactive=20"])
    assert s.eci_rate_limits == {"DescribeContainerGroups": 40.0,
                                 "DescribeContainerGroups@interactive": 20.0}
    for bad in ("DescribeContainerGroups@other=5", "Describe@=5", "@interactive=5"):
        with pytest.raises(config.ConfigError, match="ACTION@interactive=PER_MINUTE"):
            settings([*BASE, "--eci-rate-limits", bad])
    limiter = RateLimiter(s.eci_rate_limits)
    assert limiter._limits[f"DescribeContainerGroups@{INTERACTIVE}"] == 20.0
