"""One ingest writes at a time: an flock for the embedded store, a lease kept in a Chroma server.

Two writers interleaving lose copies of texts they share, and a starting writer's crash repair deletes the
other's in-flight chunks as leftovers; so `ingest()` holds `writer_lock(settings)` from before it opens the
store until its last write. Readers (`Assistant`) never take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import IndexLocked, StoreError
from .settings import Settings
from .store import connect, describe_location, server_errors

log = logging.getLogger("isnad.locking")

# The writer lease of a Chroma server (see `writer_lock`); module constants so tests can shorten them.
LEASE_SECONDS = 120.0  # a holder that has not refreshed its lease for this long is taken to be dead
LEASE_REFRESH_SECONDS = 30.0  # a thread refreshes it this often: a flush may outlast the lease
LEASE_POLL_SECONDS = 1.0  # how often a waiting ingest looks again
LEASE_SETTLE_SECONDS = 0.3  # a second look after taking it (see `_acquire`)
LEASE_WAIT_SECONDS = 30 * 60.0  # then IndexLocked: a queued ingest waits, but not forever


@contextlib.contextmanager
def writer_lock(settings: Settings, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
    """One writer at a time, taken before the store is opened (two writers interleaving lose copies of shared
    texts, and a starting writer's crash repair deletes the other's in-flight chunks as leftovers).

    Embedded store: an flock in the data directory, refused at once when held (two processes creating
    one new store collide inside Chroma). The kernel releases it when the holder dies, so it never goes
    stale. Chroma server: a lease kept in the server itself (`_server_lease`), since clients on other
    machines share nothing else; a second ingest waits for it, calling `waiting(message)` as it polls.
    """
    if settings.chroma_url:
        with _server_lease(settings, waiting):
            yield
        return
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    path = Path(settings.data_dir) / "ingest.lock"
    with contextlib.ExitStack() as held:
        try:
            handle = held.enter_context(file_lock(path, wait=False))
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8").strip() or "another process"
            raise IndexLocked(
                f"another ingest ({holder}) is writing to {settings.data_dir}: wait for it to "
                "finish, or run a Chroma server (`chroma run`) for concurrent writers"
            ) from None
        handle.truncate(0)  # a holder that was killed left its pid behind
        handle.write(f"pid {os.getpid()}")  # who holds it, for the message a second ingest gets
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[Any]:
    """An exclusive flock on `path` (created empty if missing), held while the body runs; yields the open
    file. With `wait=False`, BlockingIOError at once when another process holds it. The kernel releases it
    when the holder dies, so it never goes stale."""
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


LEASE_ID = "lease"
_HELD: set[str] = set()  # leases held (or being taken) by runs of this process, by holder id


@contextlib.contextmanager
def _server_lease(settings: Settings, waiting: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the record "lease" of the collection `<collection>-writer` while writing to a Chroma server.

    Taking it relies on Chroma's `add` ignoring an id that exists (checked on 1.5.9; racing adds from
    six clients: always exactly one winner), so it is read back to see who won. Times are the server's
    (its heartbeat), so clients' clocks need not agree. A thread refreshes `expires` while the body runs;
    the lease is deleted on the way out, error or not. A holder that died is taken over once its lease
    expires, or at once when it ran on this machine and its process (or, in this process, its run) is gone.
    """
    client = connect(settings)
    me: dict[str, Any] = {"holder": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                          "machine": _machine()}
    _HELD.add(me["holder"])  # before the first add: a thread of this process must never see it as dead
    try:
        with server_errors(settings, "taking the writer lease (run the ingest again)"):
            lease = client.get_or_create_collection(settings.collection + "-writer", embedding_function=None)
            _acquire(client, lease, me, settings, waiting)
        stop, lost = threading.Event(), []
        keeper = threading.Thread(target=_keep_lease, args=(client, lease, me, stop, lost), daemon=True,
                                  name="isnad-writer-lease")
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join(timeout=5)
            try:  # only our own record: never one another ingest took over after ours expired
                lease.delete(ids=[LEASE_ID], where={"holder": me["holder"]})
            except Exception as exc:  # noqa: BLE001 - a server gone: the lease expires (or is seen dead) anyway
                log.info("could not release the writer lease on %s: %s", settings.chroma_url, exc)
    finally:
        _HELD.discard(me["holder"])
    if lost:
        raise StoreError(
            f"this ingest lost its writer lease on {describe_location(settings)} ({lost[0]}), so another "
            "ingest may have written at the same time: run the same ingest again to make sure it is complete"
        )


def _acquire(client, lease, me: dict[str, Any], settings: Settings, waiting) -> None:
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    shown = None
    while True:
        now = _server_time(client)
        lease.add(ids=[LEASE_ID], embeddings=[[1.0]],  # Chroma wants a vector; this one means nothing
                  metadatas=[{**me, "since": now, "expires": now + LEASE_SECONDS}])
        held = _read_lease(lease)
        if held is not None and held["holder"] == me["holder"]:
            # Taking over a dead holder's lease is delete-then-add, and Chroma resolves a delete's `where`
            # before deleting: another waiter's delete of the dead lease may land just after our add.
            # Such a delete is already in flight, so a short pause and a second look settle it.
            time.sleep(LEASE_SETTLE_SECONDS)
            held = _read_lease(lease)
            if held is not None and held["holder"] == me["holder"]:
                return
        if held is None:  # released between our add and our read: try again at once
            continue
        dead = _dead(held, now)
        if dead:
            log.warning("taking over the writer lease of %s on %s: %s", _describe_holder(held),
                        settings.chroma_url, dead)
            # Only that very record (holder and expiry): not a fresh lease another waiter just took.
            lease.delete(ids=[LEASE_ID], where={"$and": [{"holder": held["holder"]}, {"expires": held["expires"]}]})
            time.sleep(LEASE_SETTLE_SECONDS)  # never a tight loop, whatever the server does
            continue
        message = (f"waiting for another ingest ({_describe_holder(held)}, since {_clock(held['since'])}) "
                   f"to finish writing to {describe_location(settings)}")
        if time.monotonic() > deadline:
            raise IndexLocked(
                f"another ingest ({_describe_holder(held)}, since {_clock(held['since'])}) is still writing to "
                f"{describe_location(settings)} after {LEASE_WAIT_SECONDS / 60:g} min of waiting: run this "
                f"one again when it has finished (a holder that died is taken over {LEASE_SECONDS:g} s after "
                "its last sign of life)"
            )
        if held["holder"] != shown:  # once per holder on the log; every poll to the caller
            log.warning("%s ...", message)
            shown = held["holder"]
        if waiting:
            waiting(message)
        time.sleep(LEASE_POLL_SECONDS)


def _keep_lease(client, lease, me: dict[str, Any], stop: threading.Event, lost: list[str]) -> None:
    """Refresh our lease until `stop`; if it is no longer ours (we stalled past its expiry and were taken
    over), say so in `lost` and stop: the ingest reports it at the end rather than claim a clean run."""
    while not stop.wait(LEASE_REFRESH_SECONDS):
        try:
            held = _read_lease(lease)
            if held is None or held["holder"] != me["holder"]:
                lost.append("taken over by " + (_describe_holder(held) if held else "another ingest"))
                log.error("the writer lease of this ingest was %s", lost[-1])
                return
            lease.update(ids=[LEASE_ID], metadatas=[{"expires": _server_time(client) + LEASE_SECONDS}])
        except Exception as exc:  # noqa: BLE001 - a server away for a moment: the writes report it themselves
            log.info("could not refresh the writer lease: %s", exc)


def _read_lease(lease) -> dict[str, Any] | None:
    got = lease.get(ids=[LEASE_ID], include=["metadatas"])
    return got["metadatas"][0] if got["ids"] else None


def _dead(held: dict[str, Any], now: float) -> str:
    """Why the holder of `held` is known dead ("" when it may be alive)."""
    if held["expires"] < now:
        return f"its lease expired {now - held['expires']:.0f} s ago"
    if held.get("machine") and held["machine"] == _machine():
        if held["pid"] == os.getpid():
            return "" if held["holder"] in _HELD else "it was an earlier ingest of this process"
        try:
            os.kill(int(held["pid"]), 0)
        except ProcessLookupError:
            return "its process is gone"
        except PermissionError:  # alive, another user's
            pass
    return ""


def _machine() -> str:
    """Where a pid means something: this boot of this host and this pid namespace (Linux). Empty elsewhere,
    and then only expiry frees a dead holder's lease."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def _server_time(client) -> float:
    return client.heartbeat() / 1e9  # nanoseconds on the server's clock


def _describe_holder(held: dict[str, Any]) -> str:
    return f"pid {held['pid']} on {held['host']}"


def _clock(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
