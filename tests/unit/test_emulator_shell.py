"""The emulator's exec shell: the commands kubectl exec and kubectl cp need."""

from __future__ import annotations

import io
import tarfile

from vk_eci.emulator.shell import FileSystem, Shell, Stdin


async def run(argv: list[str], stdin: bytes | None = None, tty: bool = False,
              fs: FileSystem | None = None) -> tuple[int, dict[int, bytes]]:
    out: dict[int, bytes] = {}

    async def write(channel: int, data: bytes) -> None:
        out[channel] = out.get(channel, b"") + data

    feed = Stdin()
    if stdin is not None:
        feed.queue.put_nowait(stdin)
    feed.queue.put_nowait(None)
    code = await Shell(fs or FileSystem(), feed, write, tty).run(argv)
    return code, out


async def test_scripts_exit_codes_and_unknown_commands() -> None:
    assert await run(["sh", "-c", "echo a && false || echo b; exit 4"]) == (
        4, {1: b"a\nb\n"})
    assert await run(["nosuch"]) == (127, {2: b"sh: nosuch: not found\n"})
    assert await run(["cat"], b"raw\x00bytes") == (0, {1: b"raw\x00bytes"})


async def test_tty_is_a_cooked_terminal() -> None:
    code, out = await run(["sh"], b"echo hi\rech\x7fho x\rexit 3\r", tty=True)
    assert code == 3
    # Echo of typed keys, CR LF line ends, the prompt, stderr merged into stdout.
    assert out[1] == (b"/ # echo hi\r\nhi\r\n/ # ech\b \bho x\r\nx\r\n/ # exit 3\r\n")


async def test_tar_out_and_back_in_as_kubectl_cp_asks() -> None:
    fs = FileSystem()
    fs.write("/data/a.txt", b"alpha")
    fs.write("/data/sub/b.bin", bytes(range(256)))
    code, out = await run(["tar", "cf", "-", "/data"], fs=fs)
    assert code == 0
    with tarfile.open(fileobj=io.BytesIO(out[1])) as tar:
        assert sorted(tar.getnames()) == ["data", "data/a.txt", "data/sub", "data/sub/b.bin"]
    other = FileSystem()
    assert (await run(["tar", "-xmf", "-", "-C", "/copy"], out[1], fs=other))[0] == 0
    assert other.files["/copy/data/sub/b.bin"] == bytes(range(256))
    assert (await run(["test", "-d", "/copy/data/sub"], fs=other))[0] == 0
    assert (await run(["test", "-d", "/copy/data/a.txt"], fs=other))[0] == 1
    assert await run(["ls", "/copy/data"], fs=other) == (0, {1: b"a.txt\nsub\n"})


def test_a_removed_group_takes_its_files_along() -> None:
    from vk_eci.emulator.clock import ManualClock
    from vk_eci.emulator.groups import ContainerDef, Group
    from vk_eci.emulator.programs import Program
    from vk_eci.emulator.state import State
    from vk_eci.emulator.timing import Timing

    state = State(region="cn-hangzhou", clock=ManualClock(), timing=Timing())
    main = ContainerDef(name="main", image="busybox", cpu=1.0, memory=2.0,
                        pull_policy="IfNotPresent", command=["sh"], args=[], program=Program(),
                        raw={})
    state.groups["eci-1"] = Group(
        id="eci-1", name="g", region="cn-hangzhou", zone="cn-hangzhou-h", created=0.0,
        cpu=1.0, memory=2.0, instance_type="", restart_policy="Never", tags=[],
        containers=[main], init_containers=[], raw={}, intranet_ip="10.0.0.2", seq=1)
    state.filesystems[("eci-1", "main")] = FileSystem()
    state.remove_group("eci-1")
    assert state.filesystems == {}
