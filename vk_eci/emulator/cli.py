"""``vk-eci emulator``: serve the offline ECI until interrupted (SIGINT or SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from vk_eci.emulator.app import Emulator


async def serve(args: argparse.Namespace) -> int:
    emu = Emulator(access_key_id=args.access_key_id, access_key_secret=args.access_key_secret,
                   region=args.region, time_scale=args.time_scale, host=args.host,
                   port=args.port)
    try:
        await emu.start()
    except OSError as e:
        print(f"vk-eci emulator: cannot listen on {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # The endpoint line is the "ready" signal scripts wait for: print it only once serving.
    print(f"ECI emulator listening on http://{emu.endpoint} (region {emu.region}, "
          f"time scale {args.time_scale:g})", flush=True)
    try:
        await stop.wait()
    finally:
        await emu.stop()
    return 0


def main(args: argparse.Namespace) -> int:
    if args.time_scale <= 0:
        print(f"vk-eci emulator: --time-scale must be > 0, got {args.time_scale}",
              file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(args))
    except KeyboardInterrupt:
        return 0
