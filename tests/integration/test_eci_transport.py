"""Attack: plain HTTP to an ECI endpoint that is not on this host. Requests
carry registry passwords and secret volumes; on any network but loopback they must go over
TLS unless the operator says otherwise in so many words (``--insecure-eci-endpoint``).

The node runs as in every node test (``vk-eci run`` in the control plane's node network, a
real kubeconfig) and the emulator listens on the host end of that network's /30: reachable,
but not loopback, as a remote endpoint would be.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fixtures.node import node_command, node_env
from vk_eci import config
from vk_eci.emulator import Emulator

pytestmark = pytest.mark.integration


async def test_the_node_refuses_plain_http_to_an_endpoint_off_this_host(
        control_plane: Any, emulator_realtime: Emulator) -> None:
    net = control_plane.network
    assert net is not None, "needs the node network (VK_ECI_TEST_LOOPBACK unset)"
    endpoint = emulator_realtime.endpoint
    assert not config.is_loopback(endpoint.rsplit(":", 1)[0]), endpoint
    argv = net.exec_prefix() + node_command(
        control_plane.node_kubeconfig, endpoint, "vk-plain-http", 20990, host=net.node_ip,
        kubelet_port=20991)
    argv.remove("--insecure-eci-endpoint")  # what the fixture adds for this very reason
    proc = await asyncio.create_subprocess_exec(*argv, env=node_env(),
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the node started with plain http to a remote endpoint") from None
    stderr = err.decode()
    assert proc.returncode == 2, (proc.returncode, stderr)
    assert "--insecure-eci-endpoint" in stderr and endpoint in stderr, stderr
    # It stopped before sending anything: no request of any kind reached the endpoint.
    for action in ("DescribeRegions", "DescribeContainerGroups", "DescribeContainerGroupStatus"):
        assert emulator_realtime.recorded(action) == [], action
    # Nor did it register a node.
    nodes = await asyncio.to_thread(control_plane.kubectl, "get", "node", "vk-plain-http",
                                    check=False)
    assert nodes.returncode != 0
