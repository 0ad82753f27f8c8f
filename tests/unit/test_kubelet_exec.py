"""vk_eci.kubelet.exec: exec options and the statuses client-go decodes."""

from __future__ import annotations

from collections.abc import Sequence

from multidict import MultiDict

from vk_eci.cloud.errors import NotFound, Retryable
from vk_eci.kubelet import exec as ex
from vk_eci.provider import ExecResult, LogOptions, PodUsage


def test_parse_request_reads_api_server_and_plain_names() -> None:
    q = MultiDict([("command", "sh"), ("command", "-c"), ("command", "echo hi"),
                   ("output", "1"), ("error", "1")])
    assert ex.parse_request(q) == ex.ExecRequest(command=("sh", "-c", "echo hi"), stdin=False,
                                                 stdout=True, stderr=True, tty=False)
    q2 = MultiDict([("command", "ls"), ("stdin", "true"), ("tty", "1")])
    r = ex.parse_request(q2)
    assert r.stdin and r.tty and not r.stdout


def test_exit_status_is_what_client_go_turns_into_an_exit_code() -> None:
    st = ex.exit_status(["false"], 3)
    assert st["status"] == "Failure" and st["reason"] == "NonZeroExitCode"
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert ex.success_status() == {"metadata": {}, "status": "Success"}


class IO:
    def __init__(self, result: ExecResult | Exception) -> None:
        self.result = result
        self.commands: list[Sequence[str]] = []

    async def exec_in_container(self, namespace: str, pod: str, container: str,
                                command: Sequence[str]) -> ExecResult:
        self.commands.append(command)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    async def container_logs(self, namespace: str, pod: str, container: str,
                             options: LogOptions) -> str:
        return ""

    async def container_state(self, namespace: str, pod: str, container: str) -> str | None:
        return None

    async def pod_usage(self) -> list[PodUsage]:
        return []


REQ = ex.ExecRequest(command=("ls",), stdin=False, stdout=True, stderr=True, tty=False)


async def test_run_exec_outcomes() -> None:
    result, status = await ex.run_exec(IO(ExecResult(stdout="a\n")), "ns", "p", "c", REQ)
    assert result == ExecResult(stdout="a\n") and status["status"] == "Success"

    _, status = await ex.run_exec(IO(ExecResult(stdout="", exit_code=2)), "ns", "p", "c", REQ)
    assert status["reason"] == "NonZeroExitCode"

    io = IO(ExecResult(stdout=""))
    for req in (ex.ExecRequest(("sh",), True, True, True, False),
                ex.ExecRequest(("sh",), False, True, True, True)):
        result, status = await ex.run_exec(io, "ns", "p", "c", req)
        assert result is None and "interactive" in status["message"] and status["code"] == 400
    _, status = await ex.run_exec(io, "ns", "p", "c", ex.ExecRequest((), False, True, True,
                                                                      False))
    assert status["code"] == 400 and "command" in status["message"]
    assert io.commands == []  # refused before any cloud call

    _, status = await ex.run_exec(IO(NotFound("ContainerGroup.NotFound", "gone")), "ns", "p",
                                  "c", REQ)
    assert status["code"] == 404 and "ns/p" in status["message"]
    _, status = await ex.run_exec(IO(Retryable("ServiceUnavailable", "busy")), "ns", "p", "c",
                                  REQ)
    assert status["code"] == 500 and "ServiceUnavailable" in status["message"]
