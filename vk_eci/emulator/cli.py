"""``vk-eci emulator``: serve the offline ECI until interrupted (SIGINT or SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from vk_eci.emulator.app import Emulator
from vk_eci.emulator.groupnet import GroupNetworkError
from vk_eci.emulator.liveproc import ImagePrograms
from vk_eci.emulator.model import EciModel
from vk_eci.emulator.ratelimit import DEFAULT_LIMITS, DEFAULT_OTHER, STATUS_ACTION


def rate_limits(pairs: list[str], model: EciModel | None = None) -> dict[str, int] | None:
    """``["Action=N", ...]`` over ECI's documented limits and the model's Status limit (None:
    just those); N=0 removes the action's limit. Raises ValueError naming the bad item."""
    if not pairs:
        return None
    limits = {**DEFAULT_LIMITS, STATUS_ACTION: (model or EciModel()).status_limit}
    for pair in pairs:
        action, sep, value = pair.partition("=")
        if not sep or not action.strip() or not value.strip().isdigit():
            raise ValueError(f"--rate-limit {pair!r}: expected ACTION=PER_MINUTE, e.g. "
                             "DescribeContainerGroupStatus=2000")
        if int(value) == 0:
            limits.pop(action.strip(), None)
        else:
            limits[action.strip()] = int(value)
    return limits


async def serve(args: argparse.Namespace, limits: dict[str, int] | None,
                programs: dict[str, str] | None = None, model: EciModel | None = None) -> int:
    emu = Emulator(access_key_id=args.access_key_id, access_key_secret=args.access_key_secret,
                   region=args.region, time_scale=args.time_scale, host=args.host,
                   port=args.port, rate_limits=limits,
                   other_limit=DEFAULT_OTHER, group_network=getattr(args, "group_network", False),
                   image_programs=programs, model=model,
                   control_token=os.environ.get("VK_ECI_EMULATOR_TOKEN") or None)
    try:
        await emu.start()
    except GroupNetworkError as e:
        print(f"vk-eci emulator: --group-network: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"vk-eci emulator: cannot listen on {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if not emu.loopback:
        print(f"vk-eci emulator: WARNING: listening on {args.host}, beyond loopback: anyone who "
              "reaches this address can call the API with the access key given and, with the "
              "control token below, the /__emulator/* control paths", file=sys.stderr,
              flush=True)
    # The endpoint line is the "ready" signal scripts wait for (the first line on stdout):
    # print it only once serving.
    print(f"ECI emulator listening on http://{emu.endpoint} (region {emu.region}, "
          f"time scale {args.time_scale:g})", flush=True)
    needed = "required" if not emu.loopback else "not required on loopback"
    print(f"ECI emulator control token: {emu.control_token} (X-Emulator-Token header on "
          f"/__emulator/*, {needed}; VK_ECI_EMULATOR_TOKEN chooses it)", flush=True)
    if emu.state.live is not None:
        net = emu.state.live.network
        print(f"group network: bridge {net.bridge}, subnet {net.subnet}, gateway {net.gateway}",
              flush=True)
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
        model = EciModel.parse(list(getattr(args, "model", None) or []))
        limits = rate_limits(list(getattr(args, "rate_limit", None) or []), model)
    except ValueError as e:
        print(f"vk-eci emulator: {e}", file=sys.stderr)
        return 2
    items = list(getattr(args, "image_program", None) or [])
    try:
        programs = dict(ImagePrograms.parse(items).rules)
    except ValueError as e:
        print(f"vk-eci emulator: {e}", file=sys.stderr)
        return 2
    if programs and not getattr(args, "group_network", False):
        print("vk-eci emulator: --image-program needs --group-network", file=sys.stderr)
        return 2
    if getattr(args, "group_network", False) and os.geteuid() != 0:
        print("vk-eci emulator: --group-network needs root", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(args, limits, programs, model))
    except KeyboardInterrupt:
        return 0
