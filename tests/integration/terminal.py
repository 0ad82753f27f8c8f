"""Driving kubectl as a person at a terminal: a real pseudo-terminal (``pty``) of a chosen size,
keystrokes sent when the expected text has appeared, the exit code at the end."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from collections.abc import Sequence


class Terminal:
    """``kubectl …`` on a pty: ``expect(text)`` waits for output, ``type(keys)`` sends bytes."""

    def __init__(self, argv: Sequence[str], rows: int = 24, cols: int = 80) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.screen = b""

    def _read(self, wait: float) -> None:
        ready, _, _ = select.select([self.master], [], [], wait)
        if ready:
            try:
                self.screen += os.read(self.master, 65536)
            except OSError:  # EIO: the program closed the terminal
                time.sleep(wait)

    def expect(self, text: bytes, within: float = 20.0) -> bytes:
        end = time.monotonic() + within
        while text not in self.screen:
            if time.monotonic() > end:
                raise AssertionError(f"{text!r} did not appear within {within}s; screen: "
                                     f"{self.screen!r}")
            self._read(0.1)
        return self.screen

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, within: float = 20.0) -> int:
        end = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > end:
                self.proc.kill()
                raise AssertionError(f"kubectl did not end within {within}s: {self.screen!r}")
            self._read(0.1)
        self._read(0.1)
        os.close(self.master)
        return self.proc.returncode


def interactive_shell(kubectl: Sequence[str], namespace: str, pod: str) -> tuple[int, bytes]:
    """``kubectl exec -it POD -- sh`` on a 33x101 terminal: a command, the terminal size as
    the container sees it, a line edited with backspace, then ``exit 7``."""
    term = Terminal([*kubectl, "exec", "-it", "-n", namespace, pod, "--", "sh"], rows=33,
                    cols=101)
    try:
        term.expect(b"/ # ")
        term.type(b"echo hello tty\r")
        term.expect(b"hello tty\r\n/ # ")
        term.type(b"stty size\r")
        term.expect(b"33 101\r\n")
        term.type(b"echo typx\x7fo\r")
        term.expect(b"typo\r\n")
        term.type(b"exit 7\r")
        return term.wait(), term.screen
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
