"""A tiny shell that exec sessions run inside an emulated container, over a per-container file
system kept in memory: enough for ``kubectl exec -it … sh``, ``kubectl exec -i … cat`` and
``kubectl cp`` (``tar``) to be tested end to end.

Commands: ``echo``, ``cat [FILE…]`` (``/dev/zero``: zeros without end, for output floods),
``sleep N`` (``infinity``: until the session ends; stdin unread meanwhile), ``exit N``,
``true``, ``false``, ``pwd``, ``ls PATH``, ``mkdir -p PATH``, ``test -d|-f|-e PATH``,
``stty size``, ``tar cf - PATH…``, ``tar -xmf - [-C DIR]`` (GNU option spellings as kubectl
sends them), ``sh``/``bash`` (interactive, or ``-c SCRIPT`` with ``;``, ``&&``, ``||``).
Anything else: ``sh: X: not found``, exit 127. With a TTY the session behaves as a cooked
terminal: typed bytes are echoed, Enter ends a line, Ctrl-C drops it, Ctrl-D on an empty line
is end of input, and output newlines become CR LF.
"""

from __future__ import annotations

import asyncio
import io
import posixpath
import shlex
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from vk_eci.emulator.programs import _SPLIT, _duration

STDOUT, STDERR = 1, 2
STDIN_BACKLOG = 4  # stdin messages held for the command, as a pipe's buffer: then the writer waits
ZEROS = bytes(32 * 1024)
Output = Callable[[int, bytes], Awaitable[None]]
PROMPT = b"/ # "


@dataclass
class FileSystem:
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {"/", "/tmp", "/etc", "/root", "/var"})

    def is_dir(self, path: str) -> bool:
        return _norm(path) in self.dirs

    def mkdir(self, path: str) -> None:
        path = _norm(path)
        while path not in self.dirs:
            self.dirs.add(path)
            path = posixpath.dirname(path)

    def write(self, path: str, data: bytes) -> None:
        path = _norm(path)
        self.mkdir(posixpath.dirname(path))
        self.files[path] = data

    def under(self, path: str) -> list[str]:
        """``path`` and everything below it, parents first."""
        path = _norm(path)
        inside = [p for p in self.dirs | set(self.files)
                  if p == path or p.startswith(path.rstrip("/") + "/")]
        return sorted(inside)


def _norm(path: str) -> str:
    return posixpath.normpath(posixpath.join("/", path))


@dataclass
class Stdin:
    """What the client sends on channel 0; ``None`` in the queue is end of input. Bounded, as
    a pipe is: a command that does not read its input makes the sender wait."""

    queue: asyncio.Queue[bytes | None] = field(
        default_factory=lambda: asyncio.Queue(STDIN_BACKLOG))
    buffer: bytes = b""
    eof: bool = False

    async def chunk(self) -> bytes | None:
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        if self.eof:
            return None
        got = await self.queue.get()
        if got is None:
            self.eof = True
        return got

    async def read_all(self) -> bytes:
        parts = []
        while (data := await self.chunk()) is not None:
            parts.append(data)
        return b"".join(parts)


class Shell:
    """One exec session's process; ``await run(argv)`` returns the exit code."""

    def __init__(self, fs: FileSystem, stdin: Stdin, out: Output, tty: bool) -> None:
        self.fs, self.stdin, self._out, self.tty = fs, stdin, out, tty
        self.size = (24, 80)  # rows, columns; set by resize messages

    async def write(self, data: bytes, channel: int = STDOUT) -> None:
        if self.tty:  # one stream, and the terminal's CR LF
            channel, data = STDOUT, data.replace(b"\n", b"\r\n")
        await self._out(channel, data)

    async def line(self) -> bytes | None:
        """One input line without its end; None at end of input. With a TTY: cooked mode."""
        current = b""
        while True:
            data = await self.stdin.chunk()
            if data is None:
                return current or None
            for i, byte in enumerate(data):
                ch = bytes([byte])
                if ch in (b"\r", b"\n"):
                    self.stdin.buffer = data[i + 1:].lstrip(b"\n") + self.stdin.buffer
                    if self.tty:
                        await self._out(STDOUT, b"\r\n")
                    return current
                if self.tty and ch == b"\x04" and not current:
                    return None
                if self.tty and ch == b"\x03":
                    current = b""
                    await self._out(STDOUT, b"^C\r\n")
                    continue
                if self.tty and ch == b"\x7f":
                    if current:
                        current = current[:-1]
                        await self._out(STDOUT, b"\b \b")
                    continue
                current += ch
                if self.tty:
                    await self._out(STDOUT, ch)

    async def run(self, argv: list[str]) -> int:
        if not argv:
            return 0
        name, args = argv[0].rsplit("/", 1)[-1], argv[1:]
        if name in ("sh", "bash", "ash"):
            if len(args) >= 2 and args[0] == "-c":
                return await self.script(args[1])
            return await self.interactive()
        command = getattr(self, f"_cmd_{name}", None)
        if command is None:
            await self.write(f"sh: {name}: not found\n".encode(), STDERR)
            return 127
        code: int = await command(args)
        return code

    async def script(self, text: str) -> int:
        code, op = 0, ";"
        for token in _SPLIT.split(text):
            if token in (";", "&&", "||", "\n"):
                op = token
                continue
            if (op == "&&" and code != 0) or (op == "||" and code == 0):
                continue
            try:
                words = shlex.split(token)
            except ValueError as e:
                await self.write(f"sh: syntax error: {e}\n".encode(), STDERR)
                return 2
            if words and words[0] == "exit":
                return _exit_code(words[1:], code)
            code = await self.run(words)
        return code

    async def interactive(self) -> int:
        code = 0
        while True:
            if self.tty:
                await self._out(STDOUT, PROMPT)
            text = await self.line()
            if text is None:
                return code
            words = shlex.split(text.decode(errors="replace"), posix=True) if text else []
            if words and words[0] == "exit":
                return _exit_code(words[1:], code)
            code = await self.script(text.decode(errors="replace"))

    # ---- commands ---------------------------------------------------------------------------

    async def _cmd_echo(self, args: list[str]) -> int:
        end = b"\n"
        if args and args[0] == "-n":
            args, end = args[1:], b""
        await self.write(" ".join(args).encode() + end)
        return 0

    async def _cmd_true(self, _: list[str]) -> int:
        return 0

    async def _cmd_false(self, _: list[str]) -> int:
        return 1

    async def _cmd_pwd(self, _: list[str]) -> int:
        await self.write(b"/\n")
        return 0

    async def _cmd_cat(self, args: list[str]) -> int:
        if not args or args == ["-"]:
            if self.tty:
                while (text := await self.line()) is not None:
                    await self.write(text + b"\n")
            else:
                while (data := await self.stdin.chunk()) is not None:
                    await self.write(data)
            return 0
        code = 0
        for path in args:
            if _norm(path) == "/dev/zero":
                while True:  # until the session ends; each write waits for the reader
                    await self.write(ZEROS)
            data = self.fs.files.get(_norm(path))
            if data is None:
                await self.write(f"cat: can't open '{path}': No such file or directory\n"
                                 .encode(), STDERR)
                code = 1
            else:
                await self.write(data)
        return code

    async def _cmd_sleep(self, args: list[str]) -> int:
        seconds = _duration(args[0]) if args else None
        if seconds is None:
            await asyncio.Event().wait()  # sleep infinity: until the session ends
        await asyncio.sleep(seconds or 0)
        return 0

    async def _cmd_ls(self, args: list[str]) -> int:
        path = _norm(args[-1] if args else "/")
        if path in self.fs.files:
            await self.write(posixpath.basename(path).encode() + b"\n")
            return 0
        if path not in self.fs.dirs:
            await self.write(f"ls: {path}: No such file or directory\n".encode(), STDERR)
            return 1
        names = sorted({p[len(path.rstrip("/")) + 1:].split("/")[0]
                        for p in self.fs.under(path) if p != path})
        await self.write(b"".join(n.encode() + b"\n" for n in names))
        return 0

    async def _cmd_mkdir(self, args: list[str]) -> int:
        for path in (a for a in args if not a.startswith("-")):
            self.fs.mkdir(path)
        return 0

    async def _cmd_test(self, args: list[str]) -> int:
        if len(args) != 2:
            return 2
        path = _norm(args[1])
        found = {"-d": path in self.fs.dirs, "-f": path in self.fs.files,
                 "-e": path in self.fs.dirs or path in self.fs.files}.get(args[0])
        return 0 if found else 1

    async def _cmd_stty(self, args: list[str]) -> int:
        if args == ["size"] and self.tty:
            await self.write(f"{self.size[0]} {self.size[1]}\n".encode())
            return 0
        await self.write(b"stty: standard input: Not a tty\n", STDERR)
        return 1

    async def _cmd_tar(self, args: list[str]) -> int:
        flags = "".join(a.lstrip("-") for a in args if a.startswith("-") and len(a) > 1
                        and not a.startswith("--")) + (args[0] if args and
                                                       not args[0].startswith("-") else "")
        directory = args[args.index("-C") + 1] if "-C" in args else "/"
        if "x" in flags:
            return await self._untar(await self.stdin.read_all(), directory)
        if "c" in flags:
            skip = {"-", "-C", directory} if "-C" in args else {"-"}
            paths = [a for a in args[1:] if not a.startswith("-") and a not in skip]
            return await self._tar(paths)
        await self.write(b"tar: need -c or -x\n", STDERR)
        return 2

    async def _tar(self, paths: list[str]) -> int:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for root in paths:
                if not self.fs.under(root):
                    await self.write(f"tar: {root}: No such file or directory\n".encode(),
                                     STDERR)
                    return 2
                for path in self.fs.under(root):
                    info = tarfile.TarInfo(path.lstrip("/"))
                    data = self.fs.files.get(path)
                    if data is None:
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
                    else:
                        info.size, info.mode = len(data), 0o644
                        tar.addfile(info, io.BytesIO(data))
        await self.write(buffer.getvalue())
        return 0

    async def _untar(self, data: bytes, directory: str) -> int:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                for member in tar.getmembers():
                    path = posixpath.join(_norm(directory), member.name)
                    if member.isdir():
                        self.fs.mkdir(path)
                    elif member.isfile():
                        extracted = tar.extractfile(member)
                        self.fs.write(path, extracted.read() if extracted else b"")
        except tarfile.TarError as e:
            await self.write(f"tar: {e}\n".encode(), STDERR)
            return 2
        return 0


def _exit_code(args: list[str], last: int) -> int:
    try:
        return int(args[0]) % 256 if args else last
    except ValueError:
        return 2
